"""Layering rules of the package, checked on the source: who may import whom."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "facescope"


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
    """The tracker runs in the base install: numpy, lap, the data contract and errors; no torch, no inference."""
    allowed = {"numpy", "lap", "facescope.errors", "facescope.structures"}
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
