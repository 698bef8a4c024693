"""``export``: COCO (round trip through ``prepare coco``), YOLO-seg (labels rasterised back), Hugging Face
datasets folder, the geometry helpers, atomic output and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest
from _metrics_data import write_dataset

from defectsynth.cli import app
from defectsynth.data import Box, Dataset, Sample
from defectsynth.data.export import ExportResult, bridged, export, mask_components, rle_encode
from defectsynth.data.prepare import prepare
from defectsynth.data.sources.coco import polygon_mask, rle_decode

H, W = 32, 40


def _masks() -> dict[str, np.ndarray]:
    """Hand-made masks: a ring (a hole) next to a rectangle, pixels touching only at a corner,
    classes touching each other, a single pixel, ignore pixels, a component at the image border."""
    a = np.zeros((H, W), np.uint8)
    cv2.circle(a, (12, 14), 9, 1, -1)
    cv2.circle(a, (12, 14), 4, 0, -1)  # ring of class 1 with a hole
    a[2:8, 24:38] = 2  # rectangle of class 2 ...
    a[8:12, 30:34] = 1  # ... touching class 1 below it
    a[20, 30] = a[21, 31] = a[22, 32] = 3  # a diagonal: one 8-connected component
    a[26:32, 0:6] = 255  # ignore: never annotated
    b = np.zeros((H, W), np.uint8)
    b[0:H, 36:40] = 2  # along the right border, top to bottom
    b[5, 5] = 3  # one pixel
    b[10:20, 10:20] = 1
    b[13:16, 13:16] = 2  # class 2 inside class 1: class 1 has a hole filled by class 2
    c = np.zeros((H, W), np.uint8)  # defect-free
    return {"a": a, "b": b, "c": c}


@pytest.fixture(scope="module")
def handmade(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    samples = [
        Sample(stem, rng.integers(0, 256, (H, W, 3), dtype=np.uint8), mask, [Box(1, 0, 0, 4, 4)] if stem == "a" else [])
        for stem, mask in _masks().items()
    ]
    root = tmp_path_factory.mktemp("export") / "hand"
    return write_dataset(root, samples, synthetic=True, splits={"train": ["a", "b"], "val": ["c"]})


def _semantic(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[out == 255] = 0
    return out


# -- geometry -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_components_rasterise_back_exactly_on_random_masks():
    """Polygons (centre rule, as `prepare coco` fills them) and RLEs give back every component's pixels."""
    rng = np.random.default_rng(1)
    for _ in range(60):
        mask = (rng.random((17, 23)) < 0.4) * rng.integers(1, 4, (17, 23))
        mask = mask.astype(np.uint8)
        mask[rng.random((17, 23)) < 0.05] = 255
        back = np.zeros_like(mask)
        for comp in mask_components(mask):
            if comp.has_holes:
                pixels = rle_decode(rle_encode(_full(comp, mask.shape)), *mask.shape, "x")
            else:
                pixels = polygon_mask([list(comp.outlines[0].ravel())], *mask.shape, "x")
            assert pixels.sum() == comp.area and not back[pixels].any()
            back[pixels] = comp.cls
        np.testing.assert_array_equal(back, _semantic(mask))


def _full(comp, shape):
    full = np.zeros(shape, bool)
    x, y, w, h = comp.bbox
    full[y : y + h, x : x + w] = comp.pixels
    return full


def test_rle_encode_column_major_and_first_pixel_set():
    mask = np.zeros((3, 2), bool)
    mask[0, 0] = mask[2, 0] = mask[1, 1] = True  # column-major: 1 0 1 0 1 0
    assert rle_encode(mask) == {"size": [3, 2], "counts": [0, 1, 1, 1, 1, 1, 1]}
    assert rle_encode(np.zeros((2, 2), bool))["counts"] == [4]


def test_bridged_polygon_keeps_the_hole_under_fillpoly():
    ring = _masks()["a"] == 1
    comp = next(c for c in mask_components(ring.astype(np.uint8)) if c.has_holes)
    filled = np.zeros((H, W), np.uint8)
    cv2.fillPoly(filled, [bridged(comp.outlines).astype(np.int32)], 1)
    assert filled[14, 12] == 0  # the hole's centre stays empty
    assert _iou(filled > 0, _full(comp, (H, W))) > 0.99


# -- COCO -----------------------------------------------------------------------------------------
def test_coco_round_trip_through_prepare_coco(handmade, tmp_path):
    result = export(handmade, tmp_path / "coco", to="coco")
    assert result.images == {"train": 2, "val": 1} and result.annotations["val"] == 0
    out = tmp_path / "coco"
    data = json.loads((out / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["scratch", "spot", "crack"] and [
        c["id"] for c in data["categories"]
    ] == [1, 2, 3]
    assert [(i["file_name"], i["width"], i["height"], i["synthetic"]) for i in data["images"]] == [
        ("a.png", W, H, True),
        ("b.png", W, H, True),
    ]
    kinds = {type(a["segmentation"]).__name__ for a in data["annotations"]}
    assert kinds == {"list", "dict"}  # the ring and the class-1 square around class 2 have holes: RLE
    ds = Dataset(handmade)
    for stem in ("a", "b", "c"):
        assert (out / "images" / f"{stem}.png").read_bytes() == ds.image_path(stem).read_bytes()
    for split in ("train", "val"):
        prepare(
            "coco",
            tmp_path / f"back-{split}",
            annotations=out / "annotations" / f"instances_{split}.json",
            images=out / "images",
            size=f"{W}x{H}",
        )
        back = Dataset(tmp_path / f"back-{split}")
        assert back.manifest.class_names == ds.manifest.class_names
        for stem in back.stems:
            sample, original = back.read(stem), ds.read(stem)
            np.testing.assert_array_equal(sample.mask, _semantic(original.mask))
            np.testing.assert_array_equal(sample.image, original.image)
            assert sorted(b.xyxy for b in sample.boxes) == sorted(
                (c.bbox[0], c.bbox[1], c.bbox[0] + c.bbox[2], c.bbox[1] + c.bbox[3])
                for c in mask_components(original.mask)
            )


def test_coco_area_bbox_and_ignore_left_out(handmade, tmp_path):
    export(handmade, tmp_path / "coco", to="coco")
    anns = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())["annotations"]
    a = [x for x in anns if x["image_id"] == 1]
    assert sum(x["area"] for x in a) == int(((_masks()["a"] > 0) & (_masks()["a"] < 255)).sum())
    diagonal = next(x for x in a if x["category_id"] == 3)
    assert diagonal["bbox"] == [30, 20, 3, 3] and diagonal["area"] == 3 and diagonal["iscrowd"] == 0


# -- YOLO-seg -------------------------------------------------------------------------------------
def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _rasterise_yolo(text: str, classes: int) -> np.ndarray:
    """Label lines drawn as Ultralytics' polygon2mask does: scale, cast to int32, cv2.fillPoly."""
    out = np.zeros((classes, H, W), np.uint8)
    for line in text.splitlines():
        index, *coords = line.split()
        xy = (np.array(coords, dtype=np.float64).reshape(-1, 2) * [W, H]).astype(np.int32)
        cv2.fillPoly(out[int(index)], [xy], 1)
    return out.astype(bool)


def test_yolo_seg_labels_rasterise_back(handmade, tmp_path):
    result = export(handmade, tmp_path / "yolo", to="yolo-seg")
    out = tmp_path / "yolo"
    assert result.images == {"train": 2, "val": 1}
    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == ["a.png", "b.png"]
    assert (out / "labels" / "val" / "c.txt").read_text() == ""
    yaml = (out / "data.yaml").read_text()
    assert (
        f'path: "{out.resolve()}"' in yaml
        and "train: images/train" in yaml
        and "val: images/val" in yaml
        and "test:" not in yaml
    )
    assert 'names:\n  0: "scratch"\n  1: "spot"\n  2: "crack"\n' in yaml
    for stem in ("a", "b"):
        drawn = _rasterise_yolo((out / "labels" / "train" / f"{stem}.txt").read_text(), 3)
        for cls in (1, 2, 3):
            assert _iou(drawn[cls - 1], _masks()[stem] == cls) > 0.9, (stem, cls)
        assert not drawn[:, 26:32, 0:6].any() or stem == "b"  # ignore pixels of "a" are in no polygon


def test_yolo_seg_data_yaml_is_read_by_a_yaml_parser(handmade, tmp_path):
    yaml = pytest.importorskip("yaml")
    export(handmade, tmp_path / "yolo", to="yolo-seg")
    data = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert data == {
        "path": str((tmp_path / "yolo").resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": {0: "scratch", 1: "spot", 2: "crack"},
    }


# -- Hugging Face datasets ------------------------------------------------------------------------
def test_hf_folder_loads_with_load_from_disk(handmade, tmp_path):
    datasets = pytest.importorskip("datasets")
    result = export(handmade, tmp_path / "hf", to="hf")
    assert result.images == {"train": 2, "val": 1}
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert sorted(loaded) == ["train", "val"]
    row = loaded["train"][0]
    assert row["stem"] == "a" and row["synthetic"] is True
    np.testing.assert_array_equal(np.asarray(row["mask"]), _masks()["a"])
    np.testing.assert_array_equal(np.asarray(row["image"]), Dataset(handmade).read("a").image)
    assert row["boxes"] == [{"class": 1, "box": [0, 0, 4, 4]}]
    assert json.loads(loaded["train"].info.description)["classes"][1]["name"] == "scratch"


def test_hf_without_datasets_is_one_line_exit_2(handmade, tmp_path, runner):
    with mock.patch.dict(sys.modules, {"datasets": None}):
        res = runner.invoke(app, ["export", str(handmade), "--to", "hf", "--out", str(tmp_path / "hf")])
    assert res.exit_code == 2 and "pip install 'defectsynth[hf]'" in res.output
    assert not (tmp_path / "hf").exists()


# -- the command, output folder, bad input --------------------------------------------------------
def test_options_map_to_export(runner):
    with mock.patch(
        "defectsynth.data.export.export", return_value=ExportResult(Path("o"), "coco", {"train": 3}, {"train": 5})
    ) as core:
        res = runner.invoke(app, ["export", "d", "--to", "yolo-seg", "--out", "o", "--overwrite", "--no-progress"])
    assert res.exit_code == 0, res.output
    core.assert_called_once_with(Path("d"), Path("o"), to="yolo-seg", overwrite=True, progress=False)
    assert "train: 3 images, 5 instances" in res.output


def test_cli_end_to_end_and_overwrite(handmade, tmp_path, runner):
    out = tmp_path / "coco"
    res = runner.invoke(app, ["export", str(handmade), "--to", "coco", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "annotations").iterdir()) == ["instances_train.json", "instances_val.json"]
    res = runner.invoke(app, ["export", str(handmade), "--to", "coco", "--out", str(out)])
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = runner.invoke(app, ["export", str(handmade), "--to", "yolo-seg", "--out", str(out), "--overwrite"])
    assert res.exit_code == 2 and "only replaces a yolo-seg export" in res.output
    assert (
        runner.invoke(app, ["export", str(handmade), "--to", "coco", "--out", str(out), "--overwrite"]).exit_code == 0
    )
    (out / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["export", str(handmade), "--to", "coco", "--out", str(out), "--overwrite"])
    assert res.exit_code == 2 and "notes.txt" in res.output and (out / "notes.txt").read_text() == "mine"


def test_bad_mask_leaves_the_previous_export_intact(handmade, tmp_path):
    broken = tmp_path / "broken"
    write_dataset(
        broken, [Sample(s.stem, s.image, s.mask, s.boxes) for s in Dataset(handmade)], splits={"train": ["a", "b", "c"]}
    )
    export(broken, tmp_path / "out", to="yolo-seg")
    before = (tmp_path / "out" / "labels" / "train" / "a.txt").read_text()
    (broken / "masks" / "c.png").write_bytes(b"not a png")
    with pytest.raises(Exception, match="c.png: unreadable or truncated image"):
        export(broken, tmp_path / "out", to="yolo-seg", overwrite=True)
    assert (tmp_path / "out" / "labels" / "train" / "a.txt").read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_dataset_without_masks_and_unknown_format(tmp_path, runner):
    boxes_only = write_dataset(
        tmp_path / "boxes", [Sample("a", np.zeros((8, 8, 3), np.uint8), None, [Box(1, 0, 0, 2, 2)])]
    )
    res = runner.invoke(app, ["export", str(boxes_only), "--to", "coco", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "has no masks/ folder" in res.output and not (tmp_path / "o").exists()
    with pytest.raises(Exception, match="--to: unknown format 'voc'"):
        export(boxes_only, tmp_path / "o", to="voc")


def test_stems_in_no_split_are_exported_as_unsplit(tmp_path):
    samples = [Sample(s, np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)) for s in ("a", "b")]
    ds = write_dataset(tmp_path / "d", samples, splits={"train": ["a"]})
    assert export(ds, tmp_path / "o", to="coco").images == {"train": 1, "unsplit": 1}
    nosplit = write_dataset(tmp_path / "n", samples)
    assert export(nosplit, tmp_path / "o2", to="yolo-seg").images == {"all": 2}
