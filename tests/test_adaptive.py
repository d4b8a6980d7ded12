"""Seeds on demand: the stopping rule on synthetic values, and the driver's rounds replayed on
resume (cells are faked in-process, so these run in milliseconds)."""

from __future__ import annotations

import json
import math
import re

import pytest
from helpers_processes import run_bench

from bench.core.errors import BenchError
from bench.core.intervals import half_width, rate_interval
from bench.grid import driver
from bench.grid.adaptive import SeedTarget, next_counts, seed_sequence
from bench.grid.config import GridConfig
from bench.grid.executors import ExecutorOptions
from bench.grid.progress import GridProgress

NOISY = [50.0, 90.0, 70.0, 95.0, 40.0, 85.0, 60.0, 99.0, 45.0, 75.0] * 3  # sd ~20 points


def _run_rule(values, start=(0, 1, 2), parts=None, **target):
    """Apply the rule until it stops; the seed counts after each round."""
    target = SeedTarget(**target)
    counts = {g: len(start) for g in values}
    history = [dict(counts)]
    for _ in range(50):
        shown = {g: {s: values[g](s) for s in seed_sequence(start, n)} for g, n in counts.items()}
        grown = next_counts(counts, shown, start, target, parts)
        if grown == counts:
            return history
        counts = grown
        history.append(dict(counts))
    raise AssertionError("the rule did not stop")


def test_a_noiseless_group_stops_at_the_start_seeds_and_a_noisy_one_grows_to_the_cap():
    history = _run_rule(
        {("classifier", "uniform"): lambda s: 94.0, ("siamese", "uniform"): lambda s: NOISY[s]},
        parts={("classifier", "uniform"): 575},  # 94.0 on every seed: its interval is the counts'
        ci=1.5,
        max_seeds=10,
        min_seeds=3,
    )
    assert [h[("classifier", "uniform")] for h in history] == [3] * len(history)
    noisy = [h[("siamese", "uniform")] for h in history]
    assert noisy[-1] == 10  # the cap, never more
    assert all(b > a for a, b in zip(noisy, noisy[1:], strict=False))
    # A round adds at least one seed and at most as many as the group has, up to the cap.
    assert noisy == [3, 6, 10]


def test_no_group_stops_before_the_minimum_which_is_three_quarters_of_the_cap_by_default():
    assert SeedTarget(ci=1).least == 15 and SeedTarget(ci=1, max_seeds=10).least == 8
    assert SeedTarget(ci=1, max_seeds=4).least == 3 and SeedTarget(ci=1, max_seeds=2).least == 2
    assert SeedTarget(ci=1, min_seeds=5).least == 5
    assert SeedTarget(ci=1).to_dict() == {
        "ci": 1,
        "against": "uniform",
        "metric": "accuracy",
        "max_seeds": 20,
    }
    assert SeedTarget(ci=1).applied()["min_seeds"] == 15  # what the records say the rule used
    history = _run_rule(
        {
            ("classifier", "uniform"): lambda s: 94.0,  # noiseless: would be done at once
            ("siamese", "uniform"): lambda s: 90.0 + (0.2 if s % 2 else -0.2),  # narrow at 3 seeds
            ("mlp", "uniform"): lambda s: NOISY[s],
        },
        parts=dict.fromkeys([("classifier", "uniform"), ("siamese", "uniform"), ("mlp", "uniform")], 575),
        ci=1.5,
        max_seeds=10,
    )
    # The minimum is reached in one round (it is a count, not a guess from the spread), then
    # the rule goes on from the values.
    assert history[1] == dict.fromkeys(history[0], 8)
    assert history[-1] == {("classifier", "uniform"): 8, ("siamese", "uniform"): 8, ("mlp", "uniform"): 10}


def test_a_rate_without_spread_stops_on_its_counts_never_on_a_zero_width_interval():
    flat = {("m", "uniform"): lambda s: 0.0, ("m", "sqrt"): lambda s: 96.0}
    # Counts known: the interval of 0 in 8 x 450 parts (0 to 0.1%), of 96% of them (±0.65).
    history = _run_rule(flat, parts=dict.fromkeys(flat, 450), ci=1.0, max_seeds=10)
    assert history[-1] == dict.fromkeys(flat, 8)
    # ... but a target tighter than the counts allow keeps them growing.
    history = _run_rule(flat, parts=dict.fromkeys(flat, 450), ci=0.3, max_seeds=10)
    assert history[-1] == {("m", "uniform"): 8, ("m", "sqrt"): 10}
    # Counts unknown: a zero-width interval says nothing, so the groups grow to the cap.
    assert _run_rule(flat, ci=1.0, max_seeds=10, min_seeds=3)[-1] == dict.fromkeys(flat, 10)


def test_a_group_stops_as_soon_as_its_interval_is_within_the_target():
    spread = {s: 90.0 + (1.0 if s % 2 else -1.0) for s in range(40)}  # sd ~1 point
    history = _run_rule({("m", "uniform"): spread.get}, ci=1.0, max_seeds=30, min_seeds=3)
    final = history[-1][("m", "uniform")]
    assert final < 30
    values = [spread[s] for s in range(final)]
    mean = sum(values) / final
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (final - 1))
    assert half_width(rate_interval(mean, sd, final)) <= 1.0
    before = history[-2][("m", "uniform")]  # the last count that was still too wide
    values = [spread[s] for s in range(before)]
    mean = sum(values) / before
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (before - 1))
    assert half_width(rate_interval(mean, sd, before)) > 1.0


def test_failed_seeds_do_not_count_and_a_group_that_always_fails_stops():
    history = _run_rule(
        {
            ("broken", "uniform"): lambda s: None,
            ("flaky", "uniform"): lambda s: None if s == 1 else 80.0,
            ("noisy", "uniform"): lambda s: None if s == 1 else NOISY[s],
        },
        parts={("flaky", "uniform"): 5000},
        ci=1.0,
        max_seeds=10,
        min_seeds=3,
    )
    # broken: no value to go by; flaky: two equal values, narrow on their 2 x 5000 parts; noisy:
    # the cap, though a failed seed made it ask for more than the cap allows.
    assert history[-1] == {("broken", "uniform"): 3, ("flaky", "uniform"): 3, ("noisy", "uniform"): 10}


def test_a_paired_difference_target_grows_both_schemes_and_only_where_needed():
    values = {
        ("m", "uniform"): lambda s: NOISY[s],
        ("m", "good-x5"): lambda s: NOISY[s] + 2.0,  # the same noise: a constant difference
        ("m", "sqrt"): lambda s: NOISY[s + 1],  # a noisy difference
    }
    history = _run_rule(values, diff_ci=1.0, max_seeds=8, metric="escape", min_seeds=3)
    final = history[-1]
    assert final[("m", "sqrt")] == 8 and final[("m", "uniform")] == 8
    # good-x5's own difference was exact from the start; it never asked for more.
    assert final[("m", "good-x5")] == 3
    # The default minimum (6 of 8) holds for pairs too: an exact difference stops there.
    final = _run_rule(values, diff_ci=1.0, max_seeds=8, metric="escape")[-1]
    assert final == {("m", "uniform"): 8, ("m", "good-x5"): 6, ("m", "sqrt"): 8}


def test_seed_sequence_continues_after_the_start_seeds():
    assert seed_sequence((0, 1, 2), 5) == [0, 1, 2, 3, 4]
    assert seed_sequence((7, 3), 4) == [7, 3, 8, 9]
    assert seed_sequence((0, 1, 2), 2) == [0, 1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"ci": 0},
        {"ci": -1},
        {"ci": 1, "max_seeds": 1},
        {"ci": 1, "metric": "map"},
        {"diff_ci": float("nan")},
        {"ci": 1, "min_seeds": 1},
        {"ci": 1, "max_seeds": 5, "min_seeds": 6},
        {"ci": 1, "min_seeds": True},
        {"ci": 1, "min_seeds": 4.0},
    ],
)
def test_bad_targets_are_one_clear_error(kwargs):
    with pytest.raises(BenchError):
        SeedTarget(**kwargs)


def test_the_grid_checks_the_target_against_its_seeds_and_schemes():
    with pytest.raises(BenchError, match="max_seeds"):
        GridConfig(
            methods=("m",), schemes=("uniform",), seeds=(0, 1, 2), seed_target=SeedTarget(ci=1, max_seeds=2)
        )
    with pytest.raises(BenchError, match="not among"):
        GridConfig(methods=("m",), schemes=("sqrt",), seeds=(0, 1), seed_target=SeedTarget(diff_ci=1))


# --------------------------------------------------------------------------- the driver


MODERATE = [80.0, 83.0, 78.0, 84.0, 77.0, 81.0, 82.0, 76.0, 80.0, 83.0]  # sd ~2.7 points


def _fake_value(method: str, scheme: str, seed: int) -> float:
    """A deterministic accuracy: the classifier is steady, the siamese network moderately noisy
    under uniform (a few rounds, then within ±3) and very noisy under sqrt (the cap)."""
    if method == "classifier":
        return 0.94
    return (MODERATE if scheme == "uniform" else NOISY)[seed % 10] / 100


class _FakeCells:
    """Stands in for ``run_cell`` in the local executor; can interrupt after ``stop_after`` cells.
    Its records count 500 parts on the test split (``counts``: None for records without counts)."""

    def __init__(self, stop_after: int | None = None, counts: dict | None = None):
        self.ran: list[tuple[str, str, int]] = []
        self.stop_after = stop_after
        self.counts = {"test": {"0": 100, "11": 400}} if counts is None else counts

    def __call__(self, cell, device="cpu", on_step=None):
        if self.stop_after is not None and len(self.ran) >= self.stop_after:
            raise KeyboardInterrupt
        self.ran.append((cell.method, cell.scheme, cell.seed))
        return {
            "schema_version": 1,
            "hash": cell.hash,
            "config": cell.to_dict(),
            "status": "ok",
            "dataset": {"good": "0", "counts": self.counts},
            "metrics": {"accuracy": _fake_value(cell.method, cell.scheme, cell.seed)},
        }


GRID = GridConfig(
    dataset="digits",
    methods=("siamese", "classifier"),
    schemes=("uniform", "sqrt"),
    seeds=(0, 1, 2),
    seed_target=SeedTarget(ci=3.0, max_seeds=10, min_seeds=3),
)


def _run(run_dir, fake, monkeypatch, resume=False, rounds=None, grid=GRID):
    monkeypatch.setattr(driver, "run_cell", fake)
    monkeypatch.setattr(driver, "GridProgress", lambda total: GridProgress(total, live=False))

    def on_round(number, added):
        if rounds is not None:
            rounds.append((number, added))

    return driver.run_adaptive_grid(
        grid, run_dir, ExecutorOptions(kind="local"), resume=resume, on_round=on_round
    )


def _cells(run_dir) -> list[tuple]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return sorted(
        (r["config"]["method"], r["config"]["scheme"], r["config"]["seed"], r["seed_round"]) for r in rows
    )


def test_rounds_add_seeds_only_where_needed_and_records_say_so(tmp_path, monkeypatch):
    outcome = _run(tmp_path, _FakeCells(), monkeypatch)
    assert outcome.seed_counts[("classifier", "uniform")] == 3  # steady: stopped at the start
    assert 3 < outcome.seed_counts[("siamese", "uniform")] < 10  # grew, then within the target
    assert outcome.seed_counts[("siamese", "sqrt")] == 10  # noisy: the cap
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(rows) == sum(outcome.seed_counts.values()) == len({r["hash"] for r in rows})
    assert all(
        r["seed_target"]
        == {"ci": 3.0, "against": "uniform", "metric": "accuracy", "max_seeds": 10, "min_seeds": 3}
        for r in rows
    )
    assert max(r["seed_round"] for r in rows) >= 2
    assert {r["seed_round"] for r in rows if r["config"]["seed"] < 3} == {0}


def test_the_driver_gives_the_rule_the_minimum_and_the_parts_behind_each_rate(tmp_path, monkeypatch):
    grid = GridConfig(
        dataset="digits",
        methods=("classifier",),
        schemes=("uniform",),
        seeds=(0, 1, 2),
        seed_target=SeedTarget(ci=3.0, max_seeds=10),
    )
    # 94% on every seed: done at the minimum (8 of 10) on its counts (8 x 500 parts: ±0.8) ...
    outcome = _run(tmp_path / "counted", _FakeCells(), monkeypatch, grid=grid)
    assert outcome.seed_counts == {("classifier", "uniform"): 8}
    rows = [json.loads(line) for line in (tmp_path / "counted" / "results.jsonl").read_text().splitlines()]
    assert {r["seed_target"]["min_seeds"] for r in rows} == {8}
    # ... while without counts its zero-width interval says nothing: the cap.
    outcome = _run(tmp_path / "uncounted", _FakeCells(counts={}), monkeypatch, grid=grid)
    assert outcome.seed_counts == {("classifier", "uniform"): 10}


def test_an_interrupted_run_resumes_into_the_same_choices(tmp_path, monkeypatch):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    rounds_whole, rounds_resumed = [], []
    _run(whole, _FakeCells(), monkeypatch, rounds=rounds_whole)
    assert len(rounds_whole) >= 2
    with pytest.raises(KeyboardInterrupt):
        _run(broken, _FakeCells(stop_after=15), monkeypatch)  # inside the first added round
    assert 12 < len(_cells(broken)) < len(_cells(whole))
    again = _FakeCells()
    _run(broken, again, monkeypatch, resume=True, rounds=rounds_resumed)
    assert rounds_resumed == rounds_whole  # every round adds the same seeds to the same groups
    assert _cells(broken) == _cells(whole)  # the same cells, in the same rounds
    assert len(again.ran) == len(_cells(whole)) - 15  # nothing ran twice
    done = _FakeCells()
    _run(broken, done, monkeypatch, resume=True)
    assert done.ran == []  # a finished run replays to the end and runs nothing


# --------------------------------------------------------------------------- the command line


def test_target_ci_runs_rounds_and_reports_them(tmp_path):
    out = tmp_path / "run"
    argv = "run --dataset digits --method classifier --scheme uniform --steps 3 --batch-images 32"
    argv = [*argv.split(), *"--target-ci 0.5 --max-seeds 4 --executor local".split()]
    done = run_bench(*argv, "--out", out, check=True)
    assert "seed round 1:" in done.stdout
    # Piped, the summary is a markdown table in percent, overkill included; so are the cell lines.
    for column in ("accuracy %", "overkill %", "target ±0.5"):  # numbers right-aligned, text left
        assert re.search(rf"\|\s*{column}\s*\|", done.stdout), column
    assert re.search(r"accuracy \d+\.\d%, escape \d+\.\d%, overkill \d+\.\d%", done.stderr)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    seeds = {}
    for r in rows:
        seeds.setdefault(r["config"]["scheme"], set()).add(r["config"]["seed"])
        assert r["seed_target"]["ci"] == 0.5
    assert seeds == {"uniform": {0, 1, 2, 3}}  # three steps of training: too noisy for ±0.5
    report = (out / "report.md").read_text()
    assert "### Seeds: target and stopping" in report and "hit the cap of 4 seeds" in report
    # The run directory's own config carries the target, so --config DIR/config.toml --resume
    # replays the same rounds (the replay itself: test_an_interrupted_run_resumes_...).
    from bench.grid.config import load_grid_toml

    assert GridConfig(**load_grid_toml(out / "config.toml")).seed_target == SeedTarget(ci=0.5, max_seeds=4)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-seeds", "5"], "only apply with a seed target"),
        (["--target-ci", "1", "--seeds", "1"], "at least 2 start seeds"),
        (["--target-ci", "1", "--seeds", "6", "--max-seeds", "4"], "max_seeds (4) is below"),
        (["--target-diff-ci", "1", "--against", "natural"], "not among the grid's schemes"),
        (["--target-ci", "0"], "above 0"),
    ],
)
def test_seed_target_flags_are_checked(extra, message, capsys):
    from bench.cli import main

    assert main(["run", "--dry-run", "--method", "classifier", "--scheme", "uniform", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_dry_run_shows_the_target_and_a_quick_run_starts_at_three_seeds(capsys):
    from bench.cli import main

    assert (
        main(
            [
                "run",
                "--dry-run",
                "--quick",
                "--method",
                "classifier",
                "--scheme",
                "uniform",
                "--target-ci",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "seeds = [0, 1, 2]" in out and "[seed_target]" in out and "ci = 2.0" in out
    assert "up to 20 cell(s)" in out
