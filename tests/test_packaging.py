"""Honest dependencies: every import of the package is declared, and the CI floors file matches the floors."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
# import name -> distribution name, where they differ
DISTRIBUTION = {
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "segmentation_models_pytorch": "segmentation-models-pytorch",
    "torch_fidelity": "torch-fidelity",
    "huggingface_hub": "huggingface-hub",
}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].lower()


def _floors(requirements: list[str]) -> dict[str, str]:
    return {_name(r): m.group(1) for r in requirements if (m := re.search(r">=([\w.]+)", r))}


def _imports() -> set[str]:
    names = set()
    for path in (ROOT / "src" / "defectsynth").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"defectsynth", "__future__"}


def test_every_import_is_a_declared_dependency_or_extra():
    project = _project()
    declared = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    used = {DISTRIBUTION.get(name, name).lower() for name in _imports()}
    assert used - declared - extras == set()
    assert "click" not in used  # typer brings it, and the package does not import it
    assert {"transformers", "datasets"} <= extras and {"transformers", "datasets"}.isdisjoint(declared)


def test_floors_file_pins_every_declared_floor_but_torch():
    project = _project()
    floors = _floors(project["dependencies"]) | _floors(project["optional-dependencies"]["sd"])
    pinned = {}
    for line in (ROOT / ".ci" / "constraints-floors.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.strip().lower()] = version.strip()
    assert set(floors) - {"torch", "torchvision"} <= set(pinned)  # torch: see the file's header
    for name, version in pinned.items():
        if name not in floors:
            continue  # a resolver hint for a test tool (scipy)
        floor = floors[name].split(".")
        assert version.split(".")[: len(floor)] == floor, (name, version, floors[name])


def test_metadata_links_the_docs():
    urls = _project()["urls"]
    assert urls["Documentation"].endswith("/docs") and urls["Issues"].endswith("/issues")
    assert _project()["readme"] == "README.md"
