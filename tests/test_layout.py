"""The package's shape: no import circle (imports inside functions count), small modules, a pipeline/ that reads
as the flow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("pipeline", "modomo_cli", "styles")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
MAX_PIPELINE_ENTRIES = 12


def module_files(root: Path = REPO) -> dict[str, Path]:
    """Every module of the packages, by dotted name (a package by its own name, from its __init__.py)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The dotted module a `from X import ...` names, relative imports resolved against `module`."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The project modules a module imports anywhere in its body (functions included)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        while name and name not in modules:  # `a.b.attribute` -> `a.b`
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = set(files)
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[module] = imports_of(tree, module, path.name == "__init__.py", modules)
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None. Iterative DFS, colour-marked."""
    state: dict[str, int] = {}  # 1 on the path, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_no_import_circle():
    circle = find_circle(import_graph(module_files()))
    assert circle is None, "import circle: " + " -> ".join(circle)


# The floors of the code, bottom up: a module imports only from its own floor or below (imports inside functions
# count). A package is known by its first name under pipeline/ (pipeline.run.engines is run).
FLOORS = (
    ("pipeline", "pipeline.errors", "pipeline.frames", "pipeline.options"),
    ("pipeline.models", "pipeline.r2"),
    ("styles", "pipeline.doctor"),
    ("pipeline.inputs",),
    ("pipeline.stages",),
    ("pipeline.config",),
    ("pipeline.outputs",),
    ("pipeline.run",),
    ("pipeline.bench",),
    ("modomo_cli",),
)


def floor_of(module: str) -> int:
    parts = module.split(".")
    key = ".".join(parts[:2]) if parts[0] == "pipeline" and len(parts) > 1 else parts[0]
    found = [n for n, floor in enumerate(FLOORS) if key in floor]
    assert found, f"{module} is on no floor of tests/test_layout.py's FLOORS"
    return found[0]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module on a higher floor, as 'importer -> imported'."""
    return sorted(
        f"{module} -> {other}"
        for module, others in graph.items()
        for other in others
        if floor_of(other) > floor_of(module)
    )


def test_no_package_imports_a_package_above_it():
    ups = upward_imports(import_graph(module_files()))
    assert not ups, "imports that run back up: " + ", ".join(ups)


def test_the_floor_check_finds_an_import_that_runs_back_up():
    assert upward_imports({"pipeline.config": {"pipeline.outputs.names"}}) == [
        "pipeline.config -> pipeline.outputs.names"
    ]
    assert upward_imports({"pipeline.outputs.names": {"pipeline.config"}}) == []


def test_the_circle_finder_finds_circles_through_function_imports(tmp_path):
    """A circle made only by an import inside a function is found; a plain chain is not a circle."""
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "__init__.py").write_text("")
    (tmp_path / "pipeline" / "a.py").write_text("from pipeline.b import thing\n")
    (tmp_path / "pipeline" / "b.py").write_text("thing = 1\n")
    (tmp_path / "pipeline" / "c.py").write_text("def late():\n    from pipeline import a\n")
    files = {name: path for name, path in module_files(tmp_path).items() if name.startswith("pipeline")}
    assert find_circle(import_graph(files)) is None
    (tmp_path / "pipeline" / "b.py").write_text("thing = 1\ndef late():\n    from . import c\n")
    files = {name: path for name, path in module_files(tmp_path).items() if name.startswith("pipeline")}
    assert find_circle(import_graph(files)) in (
        ["pipeline.a", "pipeline.b", "pipeline.c", "pipeline.a"],
        ["pipeline.b", "pipeline.c", "pipeline.a", "pipeline.b"],
        ["pipeline.c", "pipeline.a", "pipeline.b", "pipeline.c"],
    )


def test_pipeline_reads_as_the_flow():
    """At most 12 entries besides __init__.py and data/, each a role."""
    entries = sorted(
        p.name for p in (REPO / "pipeline").iterdir() if p.name not in ("__init__.py", "data", "__pycache__")
    )
    assert len(entries) <= MAX_PIPELINE_ENTRIES, entries


@pytest.mark.parametrize("module", sorted(module_files()))
def test_module_is_small(module):
    path = module_files()[module]
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(REPO)} has {lines} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.relative_to(REPO)}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


def test_a_run_makes_its_load_options_in_one_place():
    """Every engine and the bench load their models as `RunConfig.load_options` says: no other module of the
    run builds a LoadOptions of its own (models/load.py's own defaults aside)."""
    makers = sorted(
        str(path.relative_to(REPO))
        for path in module_files().values()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "LoadOptions"
    )
    assert makers == ["pipeline/config.py", "pipeline/models/load.py", "pipeline/models/load.py"], makers


PRESET_NAMES = {"sd15", "tiny", "random-sd15"}


def preset_name_branches(tree: ast.AST) -> list[int]:
    """Lines that compare something's `.name` with a preset's name (`spec.name == "random-sd15"`)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            names = any(isinstance(o, ast.Attribute) and o.attr == "name" for o in operands)
            presets = any(isinstance(o, ast.Constant) and o.value in PRESET_NAMES for o in operands)
            if names and presets:
                found.append(node.lineno)
    return found


def test_no_branch_on_a_presets_name():
    """Presets differ by data and a builder (ModelSpec.builder), never by `if spec.name == ...`."""
    branches = {
        str(path.relative_to(REPO)): lines
        for path in module_files().values()
        if (lines := preset_name_branches(ast.parse(path.read_text())))
    }
    assert not branches, branches
    assert preset_name_branches(ast.parse('if spec.name == "random-sd15":\n    pass')) == [1]
