"""Bad input to ``prepare``: one clear line naming the file or option, exit code 2, no output left, inputs untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from _formats import coco_file, rect_mask, write_jpeg, write_lemons, write_mask_file, write_pair, write_voc, write_wood

from defectsynth.cli import app


def _lemons(root: Path) -> Path:
    return write_lemons(root / "lemons")


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _coco(root: Path, change=None) -> list[str]:
    write_jpeg(root / "imgs" / "a.jpg", 16, 16)
    data = coco_file(
        [{"id": 1, "file_name": "a.jpg", "width": 16, "height": 16}],
        [{"image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]], "bbox": [1, 1, 4, 4]}],
        ["dent"],
    )
    if change:
        change(data)
    (root / "ann.json").write_text(json.dumps(data))
    return ["coco", "--annotations", str(root / "ann.json"), "--images", str(root / "imgs")]


# -- the cases: each builds a broken source under ``root`` and returns (args, fragment of the message) --
def missing_image(root):
    src = _lemons(root)
    (src / "images" / "0001_A.jpg").unlink()
    return ["lemons", "--source", str(src), "--binary", "blemish"], "0001_A.jpg: file not found"


def unreadable_image(root):
    src = _lemons(root)
    (src / "images" / "0006_A.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return ["lemons", "--source", str(src), "--binary", "blemish"], "0006_A.jpg: unreadable"


def image_size_differs_from_annotations(root):
    src = _lemons(root)
    write_jpeg(src / "images" / "0001_A.jpg", 40, 40)
    return [
        "lemons",
        "--source",
        str(src),
        "--binary",
        "blemish",
    ], "0001_A.jpg: image is 40x40 but the annotations say 64x64"


def mask_of_another_size(root):
    write_pair(root / "src", "a", rect_mask(16, 16, (1, 1, 4, 4)))
    write_mask_file(root / "src" / "a.png", rect_mask(8, 16, (1, 1, 4, 4)))
    return ["masks", "--source", str(root / "src")], "a.png: mask is 16x8 but the image is 16x16"


def unknown_class_colour(root):
    src = write_wood(root / "wood")
    path = src / "Semantic Maps" / "100000002_segm.bmp"
    segm = cv2.imread(str(path))
    segm[0, 0] = (7, 7, 7)
    cv2.imwrite(str(path), segm)
    return [
        "wood",
        "--source",
        str(src),
    ], "100000002_segm.bmp: colour (7, 7, 7) is not in the semantic map specification"


def colour_not_in_palette(root):
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[2:4, 2:4] = (0, 255, 0)
    write_jpeg(root / "src" / "images" / "c.jpg", 8, 8)
    write_mask_file(root / "src" / "masks" / "c.png", colour)
    (root / "pal.json").write_text(json.dumps({"rust": [255, 0, 0]}))
    return [
        "masks",
        "--source",
        str(root / "src"),
        "--palette",
        str(root / "pal.json"),
    ], "c.png: colour (0, 255, 0) is not in the palette"


def class_id_outside_declared(root):
    write_pair(root / "src", "a", rect_mask(8, 8, (1, 1, 4, 4), value=3))
    return [
        "masks",
        "--source",
        str(root / "src"),
        "--classes",
        "scratch,dent",
    ], "a.png: mask holds class id 3, outside the 2 declared classes"


def box_outside_image(root):
    args = _coco(root, lambda d: d["annotations"][0].update(bbox=[10, 10, 8, 4]))
    return (
        args,
        "ann.json (annotation 1, a.jpg): bbox [10, 10, 8, 4]: box [10, 10, 18, 14] of class 1 lies outside the "
        "16x16 image",
    )


def empty_box(root):
    args = _coco(root, lambda d: d["annotations"][0].update(bbox=[3, 3, 0, 4]))
    return args, "ann.json (annotation 1, a.jpg): bbox [3, 3, 0, 4] is empty"


def duplicate_stem(root):
    write_jpeg(root / "src" / "images" / "a.jpg", 8, 8)
    write_jpeg(root / "src" / "images" / "a.jpeg", 8, 8)
    write_mask_file(root / "src" / "masks" / "a.png", rect_mask(8, 8, (1, 1, 3, 3)))
    return ["masks", "--source", str(root / "src")], "duplicate stem 'a'"


def stem_with_a_path(root):
    args = _coco(root, lambda d: d["images"][0].update(file_name="../../etc/a.jpg"))
    return args, "ann.json: image file_name '../../etc/a.jpg' points outside the images folder"


def invalid_stem_characters(root):
    write_pair(root / "src", "my part", rect_mask(8, 8, (1, 1, 3, 3)))
    return ["masks", "--source", str(root / "src")], "invalid stem 'my part'"


def empty_source(root):
    (root / "src").mkdir()
    return ["masks", "--source", str(root / "src")], "src: no images found"


def missing_source(root):
    return ["wood", "--source", str(root / "nowhere")], "nowhere: source folder not found"


def wrong_size(root):
    src = _lemons(root)
    return [
        "lemons",
        "--source",
        str(src),
        "--binary",
        "blemish",
        "--size",
        "0x5",
    ], "--size: width and height must lie in 8..8192"


def malformed_json(root):
    _coco(root)
    (root / "ann.json").write_text('{"images": [')
    return ["coco", "--annotations", str(root / "ann.json"), "--images", str(root / "imgs")], "ann.json: malformed JSON"


def annotation_of_unknown_image(root):
    args = _coco(root, lambda d: d["annotations"][0].update(image_id=99))
    return args, "ann.json: annotation 1 refers to image id 99, which is not in 'images'"


def rle_of_another_size(root):
    args = _coco(root, lambda d: d["annotations"][0].update(segmentation={"size": [8, 8], "counts": [64]}))
    return args, "ann.json (annotation 1, a.jpg): RLE size [8, 8] differs from the image size [16, 16]"


def unknown_lemon_category(root):
    src = _lemons(root)
    return ["lemons", "--source", str(src), "--binary", "rot"], "--binary: unknown lemon category rot"


def empty_lemon_subset(root):
    src = _lemons(root)
    return [
        "lemons",
        "--source",
        str(src),
        "--classes",
        "artifact",
    ], "instances_default.json: no image has only artifact annotated"


def option_of_another_source(root):
    src = _lemons(root)
    return [
        "lemons",
        "--source",
        str(src),
        "--palette",
        str(root / "p.json"),
    ], "--palette cannot be used with the 'lemons' source"


def mask_missing(root):
    write_jpeg(root / "src" / "images" / "a.jpg", 8, 8)
    write_jpeg(root / "src" / "images" / "b.jpg", 8, 8)
    write_mask_file(root / "src" / "masks" / "a.png", rect_mask(8, 8, (1, 1, 3, 3)))
    return ["masks", "--source", str(root / "src")], "b.jpg: mask missing for this image"


def wood_bad_box_number(root):
    src = write_wood(root / "wood")
    (src / "Bouding Boxes" / "100000001_anno.txt").write_text("Crack\t0,1\t0,1\tzero\t0,5\n")
    return ["wood", "--source", str(src)], "100000001_anno.txt:1: 'zero' is not a number"


def wood_unknown_defect_name(root):
    src = write_wood(root / "wood")
    (src / "Bouding Boxes" / "100000001_anno.txt").write_text("Termite\t0.1\t0.1\t0.2\t0.2\n")
    return ["wood", "--source", str(src)], "100000001_anno.txt:1: unknown wood defect name 'Termite'"


def wood_map_without_boxes(root):
    src = write_wood(root / "wood")
    (src / "Bouding Boxes" / "100000002_anno.txt").unlink()
    return ["wood", "--source", str(src)], "100000002.bmp: box file missing for this image"


def voc_missing_split(root):
    src = write_voc(root / "VOC2012")
    (src / "ImageSets" / "Segmentation" / "val.txt").unlink()
    return ["voc", "--source", str(src)], "val.txt: split list not found"


def voc_rgb_mask(root):
    src = write_voc(root / "VOC2012")
    cv2.imwrite(str(src / "SegmentationClass" / "2007_000033.png"), np.zeros((32, 40, 3), np.uint8) + 5)
    return ["voc", "--source", str(src)], "2007_000033.png: mask is a RGB image: expected a palette PNG"


def lemons_not_a_zip(root):
    (root / "lemons.zip").write_bytes(b"PK but not really")
    return [
        "lemons",
        "--source",
        str(root / "lemons.zip"),
        "--binary",
        "blemish",
    ], "lemons.zip: expected the dataset folder or its .zip"


CASES = [
    missing_image,
    unreadable_image,
    image_size_differs_from_annotations,
    mask_of_another_size,
    unknown_class_colour,
    colour_not_in_palette,
    class_id_outside_declared,
    box_outside_image,
    empty_box,
    duplicate_stem,
    stem_with_a_path,
    invalid_stem_characters,
    empty_source,
    missing_source,
    wrong_size,
    malformed_json,
    annotation_of_unknown_image,
    rle_of_another_size,
    unknown_lemon_category,
    empty_lemon_subset,
    option_of_another_source,
    mask_missing,
    wood_bad_box_number,
    wood_unknown_defect_name,
    wood_map_without_boxes,
    voc_missing_split,
    voc_rgb_mask,
    lemons_not_a_zip,
]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_one_line_exit_2_nothing_left(runner, tmp_path, case):
    raw = tmp_path / "raw"
    raw.mkdir()
    args, fragment = case(raw)
    before = _digest(raw)
    outs = tmp_path / "outs"
    outs.mkdir()
    result = runner.invoke(
        app,
        ["prepare", *args, "--out", str(outs / "data"), "--size", "16", "--no-progress"]
        if "--size" not in args
        else ["prepare", *args, "--out", str(outs / "data"), "--no-progress"],
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert fragment in lines[0], lines[0]
    assert list(outs.iterdir()) == []  # no output folder, no partial temporary folder
    assert _digest(raw) == before
