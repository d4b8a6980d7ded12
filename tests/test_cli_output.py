"""What a new user meets: output that survives pipes and narrow terminals, --help that names the
choices, errors in one line, the good class said out loud, and the cell hashes rerun needs."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from bench.cli import main
from bench.cli.browse import datasets_command, list_command
from bench.core.errors import BenchError
from bench.datasets import GOOD_NAMES, ImageSet, choose_good, default_good, good_class_note

ROOT = Path(__file__).resolve().parents[1]


def console(width: int, terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=width, force_terminal=terminal, color_system=None), buffer


# --------------------------------------------------------------------------- tables


@pytest.fixture(scope="module")
def dataset_rows():
    from bench.datasets import describe_datasets

    return describe_datasets()  # builds the inspection set: once for the module


@pytest.mark.parametrize(("width", "terminal"), [(60, True), (200, True), (80, False)])
def test_datasets_listing_never_cuts_a_name_or_a_number(width, terminal, dataset_rows, monkeypatch):
    import bench.datasets

    monkeypatch.setattr(bench.datasets, "describe_datasets", lambda inputs=None: dataset_rows)
    con, buffer = console(width, terminal)
    datasets_command(argparse.Namespace(inputs="pixel"), con)
    text = buffer.getvalue()
    for whole in ("inspection", "fashion-mnist", "digits", "1380", "345", "575", "1078", "39x36"):
        assert whole in text
    assert "…" not in text and "None" not in text
    if not terminal or width < 100:  # a pipe, or too narrow for the table: plain markdown
        assert "| inspection " in text and "┃" not in text


def test_list_shows_docstrings_as_plain_text():
    con, buffer = console(60, True)
    list_command(type("Args", (), {"kind": None})(), con)
    text = buffer.getvalue()
    assert "``" not in text and ":func:" not in text
    assert "mean-anchor-triplet" in text and "Linear(embedding_size, C)" in text


@pytest.mark.parametrize("debug_first", [True, False])
def test_list_of_an_unknown_kind_is_one_line_and_debug_works_on_either_side(debug_first, capsys):
    assert main(["list", "foo"]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "error: cannot list 'foo'; choose one of methods, schemes, datasets, trunks (or nothing for all)"
    )
    argv = ["--debug", "list", "foo"] if debug_first else ["list", "foo", "--debug"]
    with pytest.raises(BenchError):  # --debug: the traceback instead of the line
        main(argv)


def test_run_help_names_the_choices_the_quick_preset_and_the_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in ("classifier", "mean-anchor-triplet", "mined-triplet", "siamese"):
        assert name in text
    for rule in ("prototype", "mean_image", "knn1", "knn5", "head"):
        assert rule in text
    assert "60 steps of 96 images, seed 0 only" in text and "n_per_defect 30" in text
    assert "default: the test split's own mix" in text
    assert "good, ok, pass or 0" in text


# --------------------------------------------------------------------------- the good class


def image_set(codes: tuple[str, ...], good_index: int | None = None) -> ImageSet:
    import torch

    labels = torch.arange(len(codes)).repeat(3)
    return ImageSet(torch.rand(len(labels), 4, 4), labels, codes, good_index, "toy")


@pytest.mark.parametrize(
    ("codes", "good"),
    [
        (("dent", "good", "scratch"), "good"),
        (("Bent", "OK"), "OK"),
        (("fail", "PASS"), "PASS"),
        (("11", "0", "12"), "0"),
        (("0", "good"), "good"),  # GOOD_NAMES order: good before 0
        (("dent", "scratch"), "dent"),  # none named: the first
    ],
)
def test_default_good_class_prefers_a_good_name_to_the_first_class(codes, good):
    assert GOOD_NAMES == ("good", "ok", "pass", "0")
    assert default_good(codes) == good
    chosen = choose_good(image_set(codes))
    assert chosen.classes[chosen.good_index] == good


def test_the_good_class_is_said_and_a_fallback_is_a_warning():
    assert good_class_note(choose_good(image_set(("dent", "good")))) == ("good class: 'good'", False)
    assert good_class_note(choose_good(image_set(("dent", "good")), "dent"), "dent") == (
        "good class: 'dent' (--good)",
        False,
    )
    note, warn = good_class_note(choose_good(image_set(("dent", "scratch"))))
    assert warn and "took the first class, 'dent'" in note and "--good CODE" in note
    note, warn = good_class_note(image_set(("a", "b"), good_index=None))
    assert warn and "no good class" in note


def folder(root: Path, classes: tuple[str, ...], per_class: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for code in classes:
        (root / code).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8), mode="L").save(
                root / code / f"{i}.png"
            )
    return root


def test_a_run_on_an_image_folder_names_its_good_class_and_lists_cell_hashes(tmp_path, capsys):
    data = folder(tmp_path / "parts", ("dent", "scratch", "bent"))
    out = tmp_path / "run"
    argv = ["run", "--dataset", f"hf:{data}", "--method", "classifier", "--scheme", "uniform"]
    assert main([*argv, "--quick", "--steps", "3", "--executor", "local", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    # (A tiny run may also warn that a cell collapsed: only the good-class warning is asserted.)
    warning = [line for line in captured.err.splitlines() if line.startswith("warning: no class")]
    assert warning == [
        "warning: no class is named good, ok, pass or 0 (any case); took the first class, 'bent', as the good "
        "class: pick another with --good CODE (classes: bent, dent, scratch)"
    ]
    assert "good class `bent`" in (out / "report.md").read_text()
    assert main(["cells", str(out)]) == 0
    listing = capsys.readouterr().out
    record = (out / "results.jsonl").read_text()
    import json

    digest = json.loads(record)["hash"]
    assert f"| {digest} | classifier | uniform " in listing
    assert main(["rerun", str(out), "ffffffffffff"]) == 2
    assert f"python -m bench cells {out}" in capsys.readouterr().err


def test_an_image_folder_of_one_class_says_so(tmp_path):
    from bench.datasets.huggingface import load_hf

    data = folder(tmp_path / "parts", ("good",))
    with pytest.raises(
        BenchError, match="image folder with one class, 'good'; a benchmark needs at least two"
    ):
        load_hf(str(data))


# --------------------------------------------------------------------------- errors up front


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[method_params.siamese]\nmargni = 0.5\n", "has no hyperparameter 'margni'"),
        ("[method_params.siamese]\nmargin = -1.0\n", "margin=-1.0 is not a positive number"),
        ('[method_params.siamese]\ntrunk = "cnn"\n', "the trunk is shared by the whole grid"),
        ("[method_params.siamse]\nmargin = 0.5\n", "unknown method 'siamse'"),
    ],
)
def test_dry_run_rejects_method_hyperparameters_the_cells_would_fail_on(table, message, tmp_path, capsys):
    path = tmp_path / "grid.toml"
    path.write_text(table)
    assert main(["run", "--method", "siamese", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_folder_named_bench_in_the_working_directory_does_not_break_the_records(tmp_path):
    """A checkout named ``bench`` in the working directory is a namespace package that shadows
    an editable install (whose import hook comes after the path search): ``bench`` then has
    neither ``__version__`` nor ``__file__``."""
    (tmp_path / "bench" / "bench").mkdir(parents=True)  # a checkout: no __init__.py at its top
    script = f"""
import sys
from importlib.machinery import PathFinder
from importlib.util import spec_from_file_location
from pathlib import Path

ROOT = Path({str(ROOT)!r})

class Editable:  # setuptools' editable finder, pointed at this checkout
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname in ("bench", "methods"):
            return spec_from_file_location(fullname, ROOT / fullname / "__init__.py")
        parent, _, _ = fullname.rpartition(".")
        if parent in ("bench", "methods"):
            return PathFinder.find_spec(fullname, path=[str(ROOT / parent)])
        return None

sys.meta_path.insert(sys.meta_path.index(PathFinder) + 1, Editable)
import bench
assert bench.__file__ is None and not hasattr(bench, "__version__"), bench  # shadowed
from bench.core.environment import environment
env = environment("cpu")
print(env["bench"])
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    from importlib import metadata

    assert done.stdout.strip() == metadata.version("bench-embeddings")
