"""The layering ARCHITECTURE.md promises, checked by reading every import (top-level and inside
functions) of the harness and the methods."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Which folders each folder may import (besides itself and third-party code). Keep in step with
# ARCHITECTURE.md. `bench` alone is the package root (its __version__).
ALLOWED: dict[str, set[str]] = {
    "bench.core": {"bench"},
    "bench.datasets": {"bench.core"},
    "bench.sampling": {"bench.core"},
    "methods": {"bench.core", "bench.datasets", "bench.sampling"},
    "bench.evaluation": {"bench.core", "bench.datasets"},
    "bench.grid": {"bench.core", "bench.datasets", "bench.sampling", "bench.evaluation", "methods"},
    "bench.tune": {
        "bench.core",
        "bench.datasets",
        "bench.sampling",
        "bench.evaluation",
        "bench.grid",
        "methods",
    },
    # The report reads records through the store as the record type, names rules in their
    # canonical order, parses scheme names as the sampling stage spells them and tells equal
    # weights by the rule the grid applies (pure modules); it never sees a method, a dataset or
    # a runner.
    "bench.report": {
        "bench.core",
        "bench.evaluation.rules",
        "bench.grid.record",
        "bench.grid.store",
        "bench.sampling.names",
        "bench.sampling.same_weights",
    },
    # Records leave the bench as frames and MLflow runs: read through the store and the record type,
    # summarized by the report's own functions, tunings read from their journal.
    "bench.export": {
        "bench.core",
        "bench.grid.record",
        "bench.grid.store",
        "bench.report",
        "bench.tune.outputs",
        "bench.tune.plots",
        "bench.tune.study",
    },
    # The study's state and summary: its stages are the CLI's own commands, so it reads only the
    # final records (through the store).
    "bench.study": {"bench", "bench.core", "bench.grid.store"},
}
# The entry points sit on top and may import anything.
TOP = {"bench.cli", "bench.profile", "bench.__main__", "bench"}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "methods":
        return "methods"
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return [n for n in names if n.split(".")[0] in ("bench", "methods")]


def _modules() -> list[tuple[str, Path]]:
    files = sorted((ROOT / "bench").rglob("*.py")) + sorted((ROOT / "methods").rglob("*.py"))
    names = [".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for f in files]
    return list(zip(names, files, strict=True))


def _allowed(source_layer: str, target: str) -> bool:
    target_layer = _layer(target)
    if target_layer == source_layer:
        return True
    allowed = ALLOWED[source_layer]
    return target_layer in allowed or any(target == a or target.startswith(a + ".") for a in allowed)


def violations() -> list[str]:
    found = []
    for module, path in _modules():
        layer = _layer(module)
        if layer in TOP or module in TOP:
            continue
        if layer not in ALLOWED:
            found.append(f"{module}: folder {layer} is not in the import rules (add it to ARCHITECTURE.md)")
            continue
        found += [f"{module} imports {t}" for t in _imports(path) if not _allowed(layer, t)]
    return found


def test_every_import_follows_the_layering():
    assert violations() == []


def test_the_rules_reject_an_upward_import(tmp_path, monkeypatch):
    # The checker itself must be able to fail: a metric module that imports the runner.
    bad = tmp_path / "bench" / "evaluation" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from bench.grid.runner import run_cell\nimport methods\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    (tmp_path / "methods").mkdir()
    assert violations() == [
        "bench.evaluation.bad imports bench.grid.runner",
        "bench.evaluation.bad imports methods",
    ]


def test_no_executor_imports_another():
    """One base per family, implementations beside it: an executor module reaches its folder
    only through the base (and the signal helper)."""
    shared = {"bench.grid.executors.base", "bench.grid.executors.signals"}
    found = [
        f"{module} imports {target}"
        for module, path in _modules()
        if module.startswith("bench.grid.executors.") and module not in shared
        for target in _imports(path)
        if target.startswith("bench.grid.executors") and target not in shared
    ]
    assert found == []


@pytest.mark.parametrize("module", [m for m, _ in _modules()])
def test_no_module_is_over_400_lines(module):
    path = dict(_modules())[module]
    assert len(path.read_text().splitlines()) <= 400, f"{module}: split it into modules of one concept each"


def test_bench_has_folders_per_stage_and_few_top_level_modules():
    top = sorted(p.name for p in (ROOT / "bench").glob("*.py"))
    assert top == ["__init__.py", "__main__.py"]
    stages = ("cli", "core", "datasets", "sampling", "evaluation", "grid", "report", "tune", "study")
    for stage in (*stages, "profile"):
        assert (ROOT / "bench" / stage / "__init__.py").is_file()
