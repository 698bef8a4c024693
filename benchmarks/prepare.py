"""Images per second for importing lemon-sized (1056x1056 JPEG) images to 256x256 with ``prepare``.

Writes a synthetic COCO export with the lemon schema (a yellow fruit with polygon defects on a
dark tray, JPEG quality 90) into a temporary folder, then times:

1. ``read_image`` alone at full size and with the JPEG DCT reduction the importer picks (4x for 256);
2. the whole ``prepare lemons`` (decode, polygons, resize, PNG writing, splits), with the reduction
   and with it switched off, so the speed-up is measured end to end.

Usage: PYTHONPATH=src python benchmarks/prepare.py [--num 40] [--size 256]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _results import add_json_option, write_results

from defectsynth.data.files import read_image  # noqa: E402
from defectsynth.data.prepare import prepare  # noqa: E402
from defectsynth.data.sources import coco  # noqa: E402

CATEGORIES = [
    "image_quality",
    "illness",
    "gangrene",
    "mould",
    "blemish",
    "dark_style_remains",
    "artifact",
    "condition",
    "pedicel",
]
SIDE = 1056


def lemon_image(rng: np.random.Generator) -> np.ndarray:
    """A photo-like 1056x1056 BGR image: textured yellow ellipse on a dark, noisy background."""
    image = np.full((SIDE, SIDE, 3), 40, np.uint8)
    centre = tuple(int(v) for v in rng.integers(450, 600, 2))
    cv2.ellipse(
        image,
        centre,
        (int(rng.integers(300, 420)), int(rng.integers(280, 400))),
        float(rng.uniform(0, 180)),
        0,
        360,
        (40, 200, 235),
        -1,
    )
    texture = cv2.resize(rng.normal(0, 18, (66, 66)).astype(np.float32), (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
    noisy = image.astype(np.float32) + texture[:, :, None] + rng.normal(0, 4, (SIDE, SIDE, 1))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def blob(rng: np.random.Generator) -> list[float]:
    """A 24-vertex polygon of radius 20-80 px somewhere on the fruit."""
    cx, cy = rng.uniform(300, 750, 2)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 24))
    radius = rng.uniform(20, 80) * rng.uniform(0.7, 1.0, 24)
    return np.round(np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1).ravel(), 2).tolist()


def write_export(root: Path, num: int) -> None:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns = [], []
    for i in range(num):
        name = f"{i // 2:04d}_{'AB'[i % 2]}.jpg"
        cv2.imwrite(str(root / "images" / name), lemon_image(rng), [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append({"id": i + 1, "file_name": name, "width": SIDE, "height": SIDE})
        for _ in range(int(rng.integers(1, 4))):
            poly = blob(rng)
            xy = np.array(poly).reshape(-1, 2)
            x0, y0 = xy.min(0)
            x1, y1 = xy.max(0)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": 5,
                    "iscrowd": 0,
                    "segmentation": [poly],
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "area": 0,
                }
            )
    data = {
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(CATEGORIES)],
        "images": images,
        "annotations": anns,
    }
    (root / "annotations" / "instances_default.json").write_text(json.dumps(data))


def time_decode(paths: list[Path], reduce: int) -> float:
    start = time.perf_counter()
    for path in paths:
        read_image(path, reduce=reduce)
    return len(paths) / (time.perf_counter() - start)


def time_prepare(src: Path, out: Path, size: int, reduced: bool) -> float:
    patches = [] if reduced else [mock.patch.object(coco, "reduce_factor", lambda *args: 1)]
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        manifest = prepare("lemons", out, source_dir=src, binary="blemish", size=str(size))
    return manifest.stats["images"] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=40)
    parser.add_argument("--size", type=int, default=256)
    add_json_option(parser)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "lemons"
        write_export(src, args.num)
        paths = sorted((src / "images").glob("*.jpg"))
        factor = coco.reduce_factor(SIDE, SIDE, (args.size, args.size), ".jpg")
        print(f"{args.num} images {SIDE}x{SIDE} JPEG -> {args.size}x{args.size}, one OpenCV thread")
        print(f"read_image full size          : {time_decode(paths, 1):7.1f} images/s")
        print(f"read_image reduce={factor}            : {time_decode(paths, factor):7.1f} images/s")
        full = time_prepare(src, Path(tmp) / "full", args.size, reduced=False)
        fast = time_prepare(src, Path(tmp) / "fast", args.size, reduced=True)
        print(f"prepare lemons, no reduction  : {full:7.1f} images/s")
        print(f"prepare lemons, reduce={factor}       : {fast:7.1f} images/s   (x{fast / full:.2f})")
    write_results(
        args.json,
        {
            "images": args.num,
            "size": args.size,
            "prepare_images_per_s": fast,
            "prepare_images_per_s_no_reduction": full,
        },
    )


if __name__ == "__main__":
    main()
