"""Wood Surface Defects (Kodytek, Bodzas & Bilik 2021), as used by the BASD paper (paper 000).

Input, as unpacked from the archive::

    <source>/Images<N>/<id>.bmp                    2800x1024 RGB (any number of Images* folders)
    <source>/Semantic Maps/<id>_segm.bmp           colour-coded semantic map
    <source>/Bouding Boxes/<id>_anno.txt           (sic) "name<TAB>left<TAB>top<TAB>right<TAB>bottom"
    <source>/Semantic Map Specification.txt        the class name -> colour blocks of the maps

Box files give corners normalised to 0..1; some use decimal commas ("0,25"), both are read. The
specification file is parsed, not hard-coded: it is cut into blocks at every line that names a
class (``name=Live_knot``, ``name: Live_knot``, or a bare ``Live_knot``); the block's colour is
read from ``R=.. G=.. B=..``-style keys (``r``/``red``, ...), a ``color=(r, g, b)`` line, three
integers on a line, or a ``#rrggbb`` hex code. Black, or a block named background, is background.

Classes, as in the BASD paper: the four knot classes (Live_knot, Death_know, Knot_missing,
knot_with_crack) merge into ``knot``; crack, quartzity (the paper's "quartzite"), resin and marrow
are kept; Blue_stain and overgrown are dropped (their pixels become background, their boxes are
removed; an image left without defects stays as a defect-free image). Default size 352x128 with
--keep-aspect: 2800x1024 is padded to 2816x1024 and downscaled 8x, as in the paper.

An image with neither a semantic map nor a box file is defect-free; one with only one of the two
is an error, as is a map colour missing from the specification or a box name not listed below.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from defectsynth.data.colors import colors_to_ids, pack_rgb
from defectsynth.data.files import IMAGE_SUFFIXES, read_bytes, read_color_mask, read_image
from defectsynth.data.model import Box, Manifest, Sample, index_by_stem, make_classes
from defectsynth.data.sources import SourceData
from defectsynth.errors import DatasetError, OptionError

WOOD_CLASSES = ("knot", "crack", "quartzity", "resin", "marrow")
WOOD_COLORS = {
    "knot": (0, 0, 255),
    "crack": (255, 0, 0),
    "quartzity": (0, 200, 0),
    "resin": (255, 225, 0),
    "marrow": (255, 0, 255),
}
WOOD_SIZE = (128, 352)
DROPPED = "dropped"
BACKGROUND = "background"

# Normalised name (lower case, '_' for spaces and dashes) -> kept class, DROPPED or BACKGROUND.
ALIASES: dict[str, str] = {
    **{
        n: "knot"
        for n in (
            "live_knot",
            "death_know",
            "death_knot",
            "dead_knot",
            "knot_missing",
            "missing_knot",
            "knot_with_crack",
            "knot",
        )
    },
    "crack": "crack",
    "quartzity": "quartzity",
    "quartzite": "quartzity",
    "resin": "resin",
    "marrow": "marrow",
    "pith": "marrow",
    "blue_stain": DROPPED,
    "bluestain": DROPPED,
    "overgrown": DROPPED,
    "background": BACKGROUND,
    "no_defect": BACKGROUND,
    "none": BACKGROUND,
    "clear": BACKGROUND,
}


def wood_class(name: str, where: str) -> str:
    """The kept class, DROPPED or BACKGROUND for a defect name as written in the archive."""
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    if key not in ALIASES:
        raise DatasetError(f"unknown wood defect name {name!r} (known: {', '.join(sorted(ALIASES))})", where)
    return ALIASES[key]


# -- the specification file -------------------------------------------------------------------
_NAME_LINE = re.compile(r"^\s*(?:name|class|label)\s*[:=]\s*(.+?)\s*$", re.I)
_CHANNEL = re.compile(r"\b(r|red|g|green|b|blue)\s*[:=]\s*(\d{1,3})\b", re.I)
_HEX = re.compile(r"#([0-9a-f]{6})\b", re.I)
_INTS = re.compile(r"\d{1,3}")


_ONE_LINE = re.compile(r"^([A-Za-z][A-Za-z_\-]*)\s*[:=\t ]\s*(.*\d.*)$")
_BARE = re.compile(r"^([A-Za-z][A-Za-z _\-]*?)\s*:?$")


def _block_color(lines: list[str]) -> tuple[int, int, int] | None:
    """The colour written in a block's lines, or None when there is none."""
    text = "\n".join(lines)
    channels = {m.group(1)[0].lower(): int(m.group(2)) for m in _CHANNEL.finditer(text)}
    if set(channels) == {"r", "g", "b"}:
        return channels["r"], channels["g"], channels["b"]
    hex_code = _HEX.search(text)
    if hex_code:
        value = int(hex_code.group(1), 16)
        return value >> 16, (value >> 8) & 255, value & 255
    for line in lines:
        ints = [int(v) for v in _INTS.findall(line)]
        if len(ints) == 3:
            return ints[0], ints[1], ints[2]
    return None


def parse_specification(text: str, where: str) -> dict[tuple[int, int, int], str]:
    """Map colour (r, g, b) -> defect name from the text of ``Semantic Map Specification.txt``.

    Blocks start at ``name=X`` (or ``class:``/``label:``) lines or at bare name lines; one-line
    entries (``X 0 255 0``, ``X: (0, 255, 0)``, ``X #00ff00``) are blocks of their own. Blocks
    without any colour (titles, notes) are skipped.
    """
    blocks: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        named = _NAME_LINE.match(line)
        one_line = _ONE_LINE.match(line) if not _CHANNEL.match(line) else None
        if not line:
            continue
        if named:
            blocks.append((named.group(1), []))
        elif one_line and not blocks or one_line and _block_color(blocks[-1][1]) is not None:
            blocks.append((one_line.group(1), [one_line.group(2)]))
        elif _BARE.match(line):
            blocks.append((_BARE.match(line).group(1).strip(), []))  # type: ignore[union-attr]
        elif blocks:
            blocks[-1][1].append(line)
    colors: dict[tuple[int, int, int], str] = {}
    for name, lines in blocks:
        rgb = _block_color(lines)
        if rgb is None:
            continue
        if not all(0 <= v <= 255 for v in rgb):
            raise DatasetError(f"colour {rgb} of {name!r} is outside 0..255", where)
        if rgb in colors and colors[rgb] != name:
            raise DatasetError(f"colour {rgb} is given to both {colors[rgb]!r} and {name!r}", where)
        colors[rgb] = name
    if not colors:
        raise DatasetError("no name/colour blocks found (expected e.g. 'name=Live_knot' then 'R=0 G=255 B=0')", where)
    return colors


def color_lookup(spec: dict[tuple[int, int, int], str], where: str) -> dict[int, int]:
    """Packed colour (r << 16 | g << 8 | b) -> class id (0 = background or dropped)."""
    ids = {name: i + 1 for i, name in enumerate(WOOD_CLASSES)}
    lookup = {0: 0}
    for (r, g, b), name in spec.items():
        kind = wood_class(name, where)
        lookup[pack_rgb((r, g, b))] = ids.get(kind, 0)
    return lookup


# -- box files --------------------------------------------------------------------------------
def _number(text: str, where: str) -> float:
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        raise DatasetError(f"{text!r} is not a number", where) from None
    if not math.isfinite(value):
        raise DatasetError(f"{text!r} is not a finite number", where)
    return value


def parse_boxes_file(text: str, height: int, width: int, where: str) -> list[Box]:
    """Kept boxes of a ``<id>_anno.txt`` file as half-open pixel boxes in a ``width`` x ``height`` image."""
    ids = {name: i + 1 for i, name in enumerate(WOOD_CLASSES)}
    boxes = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        at = f"{where}:{line_no}"
        fields = line.split("\t") if line.count("\t") == 4 else line.split()
        if len(fields) != 5:
            raise DatasetError("expected 'name<TAB>left<TAB>top<TAB>right<TAB>bottom'", at)
        kind = wood_class(fields[0], at)
        left, top, right, bottom = (_number(v.strip(), at) for v in fields[1:])
        if min(left, top, right, bottom) < -1e-3 or max(left, top, right, bottom) > 1 + 1e-3:
            raise DatasetError(f"box {fields[1:]} lies outside the image (coordinates are normalised to 0..1)", at)
        if right <= left or bottom <= top:
            raise DatasetError(f"box {fields[1:]} is empty or inverted", at)
        if kind not in ids:
            continue
        x0, y0 = max(0, math.floor(left * width + 1e-6)), max(0, math.floor(top * height + 1e-6))
        x1, y1 = min(width, math.ceil(right * width - 1e-6)), min(height, math.ceil(bottom * height - 1e-6))
        boxes.append(Box(ids[kind], x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))
    return boxes


# -- the archive layout -----------------------------------------------------------------------
def _index(folders: list[Path], suffix: str, what: str) -> dict[str, Path]:
    files = (
        p
        for f in folders
        for p in sorted(f.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(suffix)
    )
    return index_by_stem(files, lambda path: path.name[: -len(suffix)], what)


def _folders(source: Path, prefixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in source.iterdir() if p.is_dir() and p.name.lower().replace(" ", "").startswith(prefixes))


def import_wood(source_dir: Path | None = None) -> SourceData:
    """Import the Wood Surface Defects archive at ``source_dir``; see the module docstring."""
    if source_dir is None:
        raise OptionError("the wood source needs --source DIR (the unpacked archive)")
    source = Path(source_dir)
    if not source.is_dir():
        raise DatasetError("source folder not found", source)
    specs = sorted(p for p in source.glob("*.txt") if "specification" in p.name.lower())
    if not specs:
        raise DatasetError("'Semantic Map Specification.txt' not found", source)
    spec_text = read_bytes(specs[0]).decode("utf-8", errors="replace")
    lookup = color_lookup(parse_specification(spec_text, str(specs[0])), str(specs[0]))
    images = _image_index(source)
    if not images:
        raise DatasetError("no images found in Images*/ folders", source)
    maps = _index(_folders(source, ("semanticmap",)), "_segm.bmp", "semantic map")
    boxes = _index(_folders(source, ("boudingbox", "boundingbox")), "_anno.txt", "box file")
    for stem, path in {**maps, **boxes}.items():
        if stem not in images:
            raise DatasetError(f"annotation without an image {stem!r}", path)
    manifest = Manifest(
        name="wood",
        classes=make_classes(list(WOOD_CLASSES), WOOD_COLORS),
        source={
            "importer": "wood",
            "source_dir": str(source),
            "merged": {"knot": ["Live_knot", "Death_know", "Knot_missing", "knot_with_crack"]},
            "dropped": ["Blue_stain", "overgrown"],
            "specification": specs[0].name,
        },
    )
    samples = _samples(images, maps, boxes, lookup)
    return SourceData(manifest, samples, total=len(images), default_size=WOOD_SIZE, default_keep_aspect=True)


def _image_index(source: Path) -> dict[str, Path]:
    folders = _folders(source, ("images",))
    return index_by_stem(
        p
        for f in folders
        for p in sorted(f.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _samples(
    images: dict[str, Path], maps: dict[str, Path], boxes: dict[str, Path], lookup: dict[int, int]
) -> Iterator[Sample]:
    for stem in sorted(images):
        image = read_image(images[stem])
        h, w = image.shape[:2]
        if (stem in maps) != (stem in boxes):
            missing = "box file" if stem in maps else "semantic map"
            raise DatasetError(
                f"{missing} missing for this image (it has a {'semantic map' if stem in maps else 'box file'})",
                images[stem],
            )
        if stem not in maps:
            yield Sample(stem, image, np.zeros((h, w), dtype=np.uint8), [])
            continue
        colors = read_color_mask(maps[stem])
        if colors.shape[:2] != (h, w):
            raise DatasetError(
                f"semantic map is {colors.shape[1]}x{colors.shape[0]} but the image is {w}x{h}", maps[stem]
            )
        mask = colors_to_ids(colors, lookup, maps[stem], "the semantic map specification")
        text = read_bytes(boxes[stem]).decode("utf-8", errors="replace")
        yield Sample(stem, image, mask, parse_boxes_file(text, h, w, str(boxes[stem])))
