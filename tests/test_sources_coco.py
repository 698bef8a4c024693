"""The generic coco importer: polygons, RLE (compressed and uncompressed), crowd, sparse category ids."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _formats import coco_file, rle_compress, rle_encode, write_jpeg

from defectsynth.data import Dataset
from defectsynth.data.prepare import prepare
from defectsynth.data.sources.coco import fill_polygon, rle_counts, rle_decode


def test_compressed_rle_round_trip_and_decode():
    mask = np.zeros((7, 5), dtype=bool)
    mask[1:4, 2:5] = True
    mask[6, 0] = True
    counts = rle_encode(mask)
    assert rle_counts(rle_compress(counts), "x") == counts
    assert np.array_equal(rle_decode({"size": [7, 5], "counts": rle_compress(counts)}, 7, 5, "x"), mask)
    # 2x2 image, bottom-left pixel set: runs 1, 1, 2; small counts are one character each, chr(48 + count)
    assert rle_counts("112", "x") == [1, 1, 2]


def test_fill_polygon_triangle_centres():
    canvas = np.zeros((6, 6), dtype=bool)
    fill_polygon(canvas, np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]]))
    ys, xs = np.mgrid[0:6, 0:6] + 0.5
    assert np.array_equal(canvas, xs + ys < 6)


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    write_jpeg(root / "imgs" / "a.jpg", 40, 48, 1)
    write_jpeg(root / "imgs" / "sub" / "b.jpg", 40, 48, 2)
    crowd = np.zeros((40, 48), bool)
    crowd[30:40, 0:10] = True
    images = [
        {"id": 10, "file_name": "a.jpg", "width": 48, "height": 40},
        {"id": 11, "file_name": "sub/b.jpg", "width": 48, "height": 40},
    ]
    anns = [
        {"image_id": 10, "category_id": 7, "segmentation": [[4, 4, 20, 4, 20, 12, 4, 12]], "bbox": [4, 4, 16, 8]},
        {"image_id": 10, "category_id": 3, "segmentation": [[10, 8, 30, 8, 30, 20, 10, 20]], "bbox": [10, 8, 20, 12]},
        {
            "image_id": 10,
            "category_id": 3,
            "segmentation": {"size": [40, 48], "counts": rle_encode(crowd)},
            "bbox": [0, 30, 10, 10],
            "iscrowd": 1,
        },
    ]
    data = coco_file(images, anns, ["dent", "scratch"])
    data["categories"] = [{"id": 7, "name": "scratch"}, {"id": 3, "name": "dent"}]
    (root / "instances.json").write_text(json.dumps(data))
    return root


def test_coco_masks_boxes_and_crowd_rle(coco, tmp_path):
    manifest = prepare("coco", tmp_path / "o", annotations=coco / "instances.json", images=coco / "imgs", size="48x40")
    assert manifest.class_names == {0: "background", 1: "dent", 2: "scratch"}  # category-id order 3, 7
    ds = Dataset(tmp_path / "o")
    assert ds.stems == ["a", "b"]
    s = ds.read("a")
    expected = np.zeros((40, 48), np.uint8)
    expected[4:12, 4:20] = 2
    expected[8:20, 10:30] = 1  # later annotations are painted on top
    expected[30:40, 0:10] = 1  # a crowd RLE (how CVAT exports brush masks) is still its class
    assert np.array_equal(s.mask, expected)
    assert [(b.cls, b.xyxy) for b in s.boxes] == [(2, (4, 4, 20, 12)), (1, (10, 8, 30, 20)), (1, (0, 30, 10, 40))]
    assert ds.read("b").boxes == [] and not ds.read("b").mask.any()


def test_coco_resized_boxes_cover_their_objects(coco, tmp_path):
    prepare("coco", tmp_path / "o", annotations=coco / "instances.json", images=coco / "imgs", size="24x20")
    s = Dataset(tmp_path / "o").read("a")
    assert s.mask.shape == (20, 24)
    assert [b.xyxy for b in s.boxes] == [(2, 2, 10, 6), (5, 4, 15, 10), (0, 15, 5, 20)]
