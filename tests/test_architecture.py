"""The package's import graph: no import cycle, and no module importing a layer above its own.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` of a
``defectsynth`` module, at module level and inside functions alike (a function-level import is
still a dependency, only a later one). ``from a.b import c`` is an edge to the module ``a.b.c``
when there is one, else to ``a.b``. An edge from a module to a package above it (its own parent
package's ``__init__``, e.g. ``import defectsynth`` for ``__version__``) is not counted: Python
has started that package before the module, so such an edge never closes a cycle.

Layers, top to bottom (docs/architecture.md); a module may import its own layer or those below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import defectsynth

PACKAGE = Path(defectsynth.__file__).parent

# Layer of each module, by the longest matching entry: an entry with a dot is a module and everything
# below it, one without (the package itself, its __init__) only itself. Rank 0 is the top.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("interface", ("defectsynth", "defectsynth.__main__", "defectsynth.cli", "defectsynth.commands")),
    ("stages", ("defectsynth.stages",)),
    ("methods", (
        "defectsynth.encoding", "defectsynth.diffusion", "defectsynth.evaluation", "defectsynth.filtering",
        "defectsynth.balancing", "defectsynth.metrics", "defectsynth.sd_backend", "defectsynth.controllable",
        "defectsynth.data", "defectsynth.data.sources", "defectsynth.data.prepare", "defectsynth.data.export",
        "defectsynth.pipeline", "defectsynth.data.resize_loss", "defectsynth.hub", "defectsynth.hub_push",
        "defectsynth.toy_demo", "defectsynth.presets", "defectsynth.config_files",
    )),
    ("formats", ("defectsynth.formats",)),
    ("base", (
        "defectsynth.errors", "defectsynth.checks", "defectsynth.progress", "defectsynth.ranks", "defectsynth.locks",
        "defectsynth.devices", "defectsynth.seeds", "defectsynth.deprecation", "defectsynth.data.files",
        "defectsynth.data.model", "defectsynth.data.colors", "defectsynth.data.resize",
        "defectsynth.data.splits",
    )),
]  # fmt: skip


def layer_of(module: str, layers=LAYERS) -> int:
    """Rank (0 = top) of the layer whose longest prefix matches ``module``."""
    best, rank = "", None
    for i, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            below = "." in prefix and module.startswith(prefix + ".")
            if (module == prefix or below) and len(prefix) > len(best):
                best, rank = prefix, i
    if rank is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_architecture.py")
    return rank


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted name -> source file of every module of the package."""
    files = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The package modules ``tree`` imports (see the module docstring for the rule)."""
    here = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                found.add(name)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    files = module_files(package)
    return {m: imported(ast.parse(p.read_text()), m, p.name == "__init__.py", set(files)) for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """``a (layer) -> b (higher layer)`` for every import of a layer above the importer's."""
    names = [name for name, _ in layers]
    return [
        f"{a} ({names[layer_of(a, layers)]}) -> {b} ({names[layer_of(b, layers)]})"
        for a in sorted(graph) for b in sorted(graph[a]) if layer_of(b, layers) < layer_of(a, layers)
    ]  # fmt: skip


def describe(group: list[str], graph: dict[str, set[str]]) -> str:
    return "; ".join(f"{a} -> {', '.join(sorted(b for b in graph[a] if b in group))}" for a in group)


def test_no_import_cycle():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(g, graph) for g in found)


def test_no_module_imports_a_layer_above_it():
    problems = upward_imports(import_graph())
    assert not problems, "imports of a higher layer:\n" + "\n".join(problems)


def test_every_module_has_a_layer():
    for module in module_files():
        layer_of(module)


FAKE_LAYERS = [("top", ("pkg.cli",)), ("methods", ("pkg.method", "pkg")), ("formats", ("pkg.formats",))]


def write_fake(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_checker_finds_a_cycle_through_a_function_level_import_and_an_upward_import(tmp_path):
    package = write_fake(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/cli.py": "from pkg.method import run\n",
        "pkg/method.py": "from pkg.formats.io import read\n\ndef run():\n    from pkg import cli\n",
        "pkg/formats/__init__.py": "",
        "pkg/formats/io.py": "def read():\n    from pkg.method import run\n",
        "pkg/formats/plain.py": "from . import io\nimport pkg\n",
    })  # fmt: skip
    graph = import_graph(package)
    assert graph["pkg.formats.plain"] == {"pkg.formats.io"}  # relative import resolved; `import pkg`: its own parent
    assert cycles(graph) == [["pkg.cli", "pkg.formats.io", "pkg.method"]]
    assert (
        describe(cycles(graph)[0], graph)
        == "pkg.cli -> pkg.method; pkg.formats.io -> pkg.method; pkg.method -> pkg.cli, pkg.formats.io"
    )
    assert upward_imports(graph, FAKE_LAYERS) == [
        "pkg.formats.io (formats) -> pkg.method (methods)", "pkg.method (methods) -> pkg.cli (top)",
    ]  # fmt: skip


def test_the_checker_passes_a_clean_graph_and_names_a_module_without_layer(tmp_path):
    package = write_fake(tmp_path, {
        "pkg/__init__.py": "from pkg.method import run\n",
        "pkg/method.py": "from pkg.formats import io\n\ndef run():\n    from pkg.formats.io import read\n",
        "pkg/formats/__init__.py": "",
        "pkg/formats/io.py": "import json\n",
    })  # fmt: skip
    graph = import_graph(package)
    assert cycles(graph) == [] and upward_imports(graph, FAKE_LAYERS) == []
    with pytest.raises(AssertionError, match="pkg.other is in no layer"):
        layer_of("pkg.other", FAKE_LAYERS)
