"""Inception and LPIPS wiring end to end: randomly initialised networks of the real architectures,
saved as safetensors in a temporary folder and loaded through the real loading path (no download)."""

from __future__ import annotations

import math
import urllib.error

import numpy as np
import pytest
import torch
from _metrics_data import random_images, write_dataset

from defectsynth.cli import app
from defectsynth.data import Dataset, Sample
from defectsynth.errors import DatasetError, MissingDependencyError
from defectsynth.metrics import compute_metrics
from defectsynth.metrics.fid_kid import FEATURE_SIZES, fid_from_features, inception_features
from defectsynth.metrics.lpips import condition_pairs, lpips_distances, to_lpips_range
from defectsynth.metrics.weights import (
    LPIPS_NETS,
    WEIGHT_FILES,
    inception_architecture,
    load_inception,
    load_lpips,
    lpips_class,
    save_weights,
)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_weights(inception_architecture(list(FEATURE_SIZES)), folder / WEIGHT_FILES["inception"])
    for net in LPIPS_NETS:
        save_weights(lpips_class()(net=net, pretrained=False, pnet_rand=True), folder / WEIGHT_FILES[net])
    return folder


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """real r00..r03; 'paired' s00..s03 whose images equal the real image named by condition_of;
    'noisy' r00..r03 (same stems, no condition_of) with different pixels."""
    root = tmp_path_factory.mktemp("metrics")
    real_samples = random_images(4, 32, seed=1, prefix="r")
    real = write_dataset(root / "real", real_samples)
    condition_of = {"s00": "r02", "s01": "r00", "s02": "r03", "s03": "r01"}
    by_stem = {s.stem: s for s in real_samples}
    paired = [
        Sample(stem, by_stem[cond].image, by_stem[cond].mask, by_stem[cond].boxes)
        for stem, cond in condition_of.items()
    ]
    source = {"condition_of": condition_of, "conditions": {"dataset": str(real), "split": None}}
    paired_dir = write_dataset(root / "paired", paired, source=source, synthetic=True)
    noisy = write_dataset(root / "noisy", random_images(4, 32, seed=2, prefix="r"), synthetic=True)
    return {"real": real, "paired": paired_dir, "noisy": noisy}


def test_inception_input_is_uint8_and_scaled_to_minus_one_one(weights_dir, tmp_path):
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255
    folder = write_dataset(tmp_path / "bw", [Sample("a", image)])
    net = load_inception(list(FEATURE_SIZES), weights_dir)
    seen = {}
    net.register_forward_pre_hook(lambda m, args: seen.setdefault("net", args[0]))
    net.Conv2d_1a_3x3.register_forward_pre_hook(lambda m, args: seen.setdefault("conv", args[0]))
    feats = inception_features(Dataset(folder), ["a"], net, list(FEATURE_SIZES))
    assert seen["net"].dtype == torch.uint8 and seen["net"].shape == (1, 3, 32, 32)
    conv_in = seen["conv"]
    assert conv_in.shape[-2:] == (299, 299)
    assert conv_in.min().item() == pytest.approx(-1.0) and conv_in.max().item() == pytest.approx(127 / 128)
    assert [f.shape for f in feats.values()] == [(1, 64), (1, 192), (1, 768), (1, 2048)] and feats[
        64
    ].dtype == torch.float64


@pytest.mark.slow
def test_fid_kid_end_to_end(weights_dir, datasets):
    # 2048 is left out only for time (a 2048x2048 eigen-decomposition); its features are checked above
    result = compute_metrics(
        ["fid", "kid"],
        synthetic=datasets["noisy"],
        real=datasets["real"],
        weights_dir=weights_dir,
        features="64,192,768",
    )
    assert list(result["fid"]) == ["64", "192", "768"] and list(result["kid"]) == ["64", "192", "768"]
    assert all(math.isfinite(v) and v > 0 for v in result["fid"].values())
    assert result["kid"]["768"]["subset_size"] == 4 and result["kid"]["768"]["subsets"] == 100
    # same images on both sides (paired holds the real images, reordered): FID 0
    same = compute_metrics(
        ["fid"], synthetic=datasets["paired"], real=datasets["real"], weights_dir=weights_dir, features="64"
    )
    assert same["fid"]["64"] == pytest.approx(0.0, abs=1e-6)
    # and the result is the FID of the features of the loaded network
    net = load_inception([64], weights_dir)
    real_ds, noisy_ds = Dataset(datasets["real"]), Dataset(datasets["noisy"])
    direct = fid_from_features(
        inception_features(real_ds, real_ds.stems, net, [64])[64],
        inception_features(noisy_ds, noisy_ds.stems, net, [64])[64],
    )
    assert result["fid"]["64"] == pytest.approx(direct, rel=1e-9)


@pytest.mark.slow
def test_lpips_pairs_through_condition_of(weights_dir, datasets):
    result = compute_metrics(["lpips"], synthetic=datasets["paired"], real=datasets["real"], weights_dir=weights_dir)
    assert list(result["lpips"]) == list(LPIPS_NETS)
    for net in LPIPS_NETS:  # every synthetic image meets the very image it was made from: distance 0
        assert result["lpips"][net] == {"mean": 0.0, "std": 0.0, "pairs": 4}


def test_lpips_same_stem_pairs_and_input_range(weights_dir, datasets):
    synth, real = Dataset(datasets["noisy"]), Dataset(datasets["real"])
    pairs = condition_pairs(synth, real, synth.stems)
    assert pairs == [(s, s) for s in synth.stems]
    net = load_lpips("squeeze", weights_dir)
    seen = []
    net.scaling_layer.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    got = lpips_distances(synth, real, pairs, {"squeeze": net})["squeeze"]
    assert all(x.min().item() == -1.0 and x.max().item() == 1.0 for x in seen)  # random uint8 images span 0..255
    a = to_lpips_range(torch.from_numpy(np.stack([synth.read(s).image for s in synth.stems])).permute(0, 3, 1, 2))
    b = to_lpips_range(torch.from_numpy(np.stack([real.read(s).image for s in synth.stems])).permute(0, 3, 1, 2))
    with torch.no_grad():
        want = net(a, b).reshape(-1).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.all(got != 0)


def test_to_lpips_range_maps_uint8_to_minus_one_one():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).reshape(1, 3, 1, 1)
    assert to_lpips_range(x).flatten().tolist() == pytest.approx([-1.0, 51 / 127.5 - 1, 1.0])


def test_lpips_refuses_pairs_of_different_sizes(tmp_path, datasets, weights_dir):
    big = write_dataset(tmp_path / "big", random_images(1, 40, seed=3, prefix="r"))
    with pytest.raises(DatasetError, match=r"is 40x40 but its real image .*r00\.png is 32x32"):
        compute_metrics(["lpips"], synthetic=big, real=datasets["real"], nets="squeeze", weights_dir=weights_dir)


def test_missing_condition_entry(tmp_path, datasets):
    source = {"condition_of": {"x": "r00"}}
    synth = write_dataset(tmp_path / "s", random_images(1, 32, seed=4, prefix="s"), source=source, synthetic=True)
    with pytest.raises(DatasetError, match="no entry for synthetic image 's00'"):
        condition_pairs(Dataset(synth), Dataset(datasets["real"]), ["s00"])


def test_missing_weights_is_one_line_and_exit_2(tmp_path, datasets, runner):
    res = runner.invoke(
        app,
        [
            "metrics",
            "fid",
            "--synthetic",
            str(datasets["noisy"]),
            "--real",
            str(datasets["real"]),
            "--weights-dir",
            str(tmp_path),
            "--no-progress",
        ],
    )
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "inception_v3_fid.safetensors" in lines[0], res.output


@pytest.mark.slow
def test_wrong_weights_file_is_named(tmp_path, weights_dir):
    (tmp_path / WEIGHT_FILES["inception"]).write_bytes((weights_dir / WEIGHT_FILES["squeeze"]).read_bytes())
    with pytest.raises(MissingDependencyError, match="does not hold inception weights: missing"):
        load_inception([64], tmp_path)
    (tmp_path / WEIGHT_FILES["alex"]).write_bytes(b"not safetensors")
    with pytest.raises(MissingDependencyError, match="not a readable safetensors file"):
        load_lpips("alex", tmp_path)


def test_offline_default_path_names_the_cache_file(tmp_path, monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as tfi
    import torchvision.models._api as tv_api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(tfi, "load_state_dict_from_url", offline)
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    with pytest.raises(
        MissingDependencyError, match=r"put weights-inception-2015-12-05-6726825d\.pth in .*hub/checkpoints"
    ):
        load_inception([64])
    with pytest.raises(
        MissingDependencyError,
        match=r"put squeezenet1_1-b8a52dc0\.pth in .*hub/checkpoints.*lpips_squeeze\.safetensors",
    ):
        load_lpips("squeeze")


@pytest.mark.slow
def test_export_weights_round_trip(tmp_path, monkeypatch):
    """export_weights saves what the libraries' default path built; --weights-dir loads it back unchanged."""
    import defectsynth.metrics.weights as weights

    built = {
        "inception": inception_architecture([2048]),
        "squeeze": lpips_class()(net="squeeze", pretrained=False, pnet_rand=True),
    }
    monkeypatch.setattr(weights, "load_inception", lambda features: built["inception"])
    monkeypatch.setattr(weights, "load_lpips", lambda net: built[net])
    written = weights.export_weights(tmp_path, nets=("squeeze",))
    assert [p.name for p in written] == [WEIGHT_FILES["inception"], WEIGHT_FILES["squeeze"]]
    monkeypatch.undo()
    loaded = {"inception": load_inception([2048], tmp_path), "squeeze": load_lpips("squeeze", tmp_path)}
    for key, module in built.items():
        want, got = module.state_dict(), loaded[key].state_dict()
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want), key
