from __future__ import annotations

import numpy as np
import torch

from defectsynth.data import Dataset
from defectsynth.evaluation.data import IMAGENET_MEAN, IMAGENET_STD, PairCache, SegmentationPairs


def test_pairs_are_resized_normalised_and_cached(toy_dataset):
    ds = Dataset(toy_dataset)
    cache = PairCache((64, 64))
    stem = ds.stems[0]
    image, mask = cache.get(ds, stem)
    assert image.shape == (64, 64, 3) and mask.shape == (64, 64) and cache.get(ds, stem)[0] is image
    assert set(np.unique(mask)) <= ds.manifest.class_ids  # nearest neighbour: no new ids
    x, y = SegmentationPairs([(image, mask)])[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.allclose(x * IMAGENET_STD + IMAGENET_MEAN, torch.from_numpy(image).permute(2, 0, 1) / 255.0, atol=1e-5)


def test_binary_masks_keep_ignore():
    mask = np.array([[0, 1, 2], [2, 255, 1]], dtype=np.uint8)
    _, y = SegmentationPairs([(np.zeros((2, 3, 3), np.uint8), mask)], binary_class=2)[0]
    assert y.tolist() == [[0, 0, 1], [1, 255, 0]]


def test_classic_augmentation_moves_mask_with_image_and_fills_ignore():
    torch.manual_seed(0)
    image = np.zeros((32, 32, 3), np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    image[8:20, 10:22] = 255
    mask[8:20, 10:22] = 3
    data = SegmentationPairs([(image, mask)], augment=True)
    changed = 0
    for _ in range(8):
        x, y = data[0]
        assert set(torch.unique(y).tolist()) <= {0, 3, 255}
        bright = (x * IMAGENET_STD + IMAGENET_MEAN).mean(0) > 0.5
        inside = y == 3
        # the defect's pixels are (nearly all) still the bright square after the joint transform
        assert bright[inside].float().mean() > 0.9
        changed += int(not torch.equal(y, torch.from_numpy(mask).long()))
    assert changed >= 4
