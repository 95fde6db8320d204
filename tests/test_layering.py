"""Layering rules of the package, checked on the source: who may import whom.

The file-level import graph counts every import statement of a file: top level, inside functions and
under ``TYPE_CHECKING``. Relative imports are resolved against the file's package, and ``from
package import name`` points at the file ``package/name.py`` when there is one, else at the package's
``__init__.py``. Plug-ins named by strings (``importlib.import_module``) are not edges.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "facescope"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def imports_of(path: Path) -> set[str]:
    """Every module named by an import statement in ``path`` (top level and inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_training_data_does_not_import_the_evaluation_package():
    offenders = {p.name: sorted(m for m in imports_of(p) if m.startswith("facescope.eval")) for p in (PACKAGE / "data").glob("*.py")}
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_no_installed_module_imports_the_test_oracles():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if any(m.split(".")[0] in ("oracles", "tests") for m in imports_of(p))]
    assert offenders == [] and not (PACKAGE / "_reference").exists()


def test_process_groups_and_gathers_live_in_one_module():
    collectives = ("init_process_group", "destroy_process_group", "get_rank", "broadcast_object_list", "all_gather", "barrier(")
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "distributed.py" and any(f"dist.{name}" in p.read_text() for name in collectives)
    ]
    assert offenders == []


def test_tracking_is_numpy_only():
    """The tracker runs in the base install: numpy, lap, the data contract, errors and the torch-free numpy box
    ops; no torch, no inference."""
    allowed = {"numpy", "lap", "facescope.errors", "facescope.structures", "facescope.ops.nms"}
    offenders = {
        p.name: sorted(m for m in imports_of(p) if m not in allowed and not m.startswith(("facescope.tracking", "__future__", "enum", "dataclasses", "typing")))
        for p in (PACKAGE / "tracking").glob("*.py")
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_the_ray_collection_package_is_entered_only_by_its_command():
    """facescope.scale (the ray extra) builds on inference/; only cli/detect_ray.py imports it, and it imports no CLI."""
    importers = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.parent.name != "scale" and any(m.startswith("facescope.scale") for m in imports_of(p))
    )
    assert importers == ["cli/detect_ray.py"]
    assert not [p.name for p in (PACKAGE / "scale").glob("*.py") if any(m.startswith("facescope.cli") for m in imports_of(p))]


# ------------------------------------------------------------------------------------- the import graph


def module_name(path: Path, root: Path = ROOT) -> str:
    """``facescope/inference/tta.py`` -> ``facescope.inference.tta``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def file_imports(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The modules of ``modules`` that ``path`` imports, by any import statement anywhere in the file."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)
                elif target in modules:
                    found.add(target)
    found.discard(name)
    return found


def import_graph(package: Path = PACKAGE, root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    files = {module_name(path, root): path for path in package.rglob("*.py")}
    return {name: file_imports(path, set(files), root) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def documented_layers(text: str | None = None) -> dict[str, int]:
    """The layer table of docs/architecture.md: unit (``ops``, ``errors``, ``__init__``...) -> layer index."""
    text = ARCHITECTURE.read_text() if text is None else text
    table = text.split("<!-- layers: begin")[1].split("<!-- layers: end -->")[0]
    layers: dict[str, int] = {}
    for row in re.findall(r"^\| (\d+) \| (.+) \|$", table, flags=re.MULTILINE):
        for unit in re.findall(r"`([^`]+)`", row[1]):
            assert unit not in layers, f"{unit} is listed twice in the layer table"
            layers[unit] = int(row[0])
    return layers


def unit_of(module: str) -> str:
    """The layer unit of a module: ``facescope.inference.tta`` -> ``inference``; ``facescope`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_the_graph_counts_every_kind_of_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.b import B\n")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub import b\n"
        "def f():\n    from . import c\n    import pkg.d\n"
    )
    (package / "sub" / "b.py").write_text("from ..a import f\nfrom pkg.sub import B2\nB = 1\n")
    (package / "c.py").write_text("from pkg import d\n")
    (package / "d.py").write_text("from . import c\n")
    graph = import_graph(package, tmp_path)
    assert graph["pkg.a"] == {"pkg.sub.b", "pkg.c", "pkg.d"}  # type-only, relative and in-function imports
    assert graph["pkg.sub.b"] == {"pkg.a", "pkg.sub"}  # a name of a package's __init__ points at it
    assert graph["pkg.c"] == {"pkg.d"} and graph["pkg"] == set()
    assert cycles(graph) == [["pkg.a", "pkg.sub", "pkg.sub.b"], ["pkg.c", "pkg.d"]]


def test_no_import_cycle_between_the_package_files():
    found = cycles(import_graph())
    assert found == [], "import cycles (strongly connected files): " + "; ".join(" <-> ".join(c) for c in found)


def test_every_top_level_module_and_package_has_one_documented_layer():
    units = {unit_of(module_name(path)) for path in PACKAGE.rglob("*.py")}
    layers = documented_layers()
    assert sorted(units - set(layers)) == [] and sorted(set(layers) - units) == []


def test_files_import_only_from_their_own_or_lower_layers():
    layers = documented_layers()
    upward = sorted(
        f"{module} (layer {layers[unit_of(module)]}) imports {target} (layer {layers[unit_of(target)]})"
        for module, targets in import_graph().items()
        for target in targets
        if layers[unit_of(target)] > layers[unit_of(module)]
    )
    assert upward == [], "imports against the layer order of docs/architecture.md:\n" + "\n".join(upward)
