"""Training health: the metrics on known embeddings, the collapse values the methods declare,
the flag on a run that collapses, its warning, its report section; the machine fingerprint."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import methods.base
from bench.cli import main
from bench.evaluation.health import (
    class_signal,
    collapse_signs,
    effective_rank,
    embedding_spread,
    is_collapsed,
    loss_curve,
    pc1_share,
    training_health,
)
from bench.grid.store import read_records
from bench.sampling.budget import Budget
from methods import create_method


def _isotropic(n: int = 4000, d: int = 16) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0))


def test_effective_rank_and_pc1_share_on_known_embeddings():
    iso = _isotropic()
    assert effective_rank(iso) > 15.5 and pc1_share(iso) < 1.5 / 16
    line = torch.linspace(-1, 1, 500)[:, None] * torch.randn(
        1, 16, generator=torch.Generator().manual_seed(1)
    )
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-4) and pc1_share(line) == pytest.approx(1.0)
    point = torch.ones(300, 16)  # every image embedded at one point
    assert effective_rank(point) == pytest.approx(1.0, abs=1e-4) and pc1_share(point) == 0.0
    plane = iso[:, :2] @ torch.randn(2, 16, generator=torch.Generator().manual_seed(2))
    assert 1.2 < effective_rank(plane) <= 2.0
    assert effective_rank(torch.zeros(5, 4)) == 0.0 and effective_rank(torch.zeros(0, 4)) == 0.0


def test_class_signal_runs_from_chance_to_perfect():
    assert class_signal(0.5, 2) == 0.0 and class_signal(1 / 19, 19) == pytest.approx(0.0)
    assert class_signal(1.0, 10) == 1.0 and class_signal(0.55, 10) == pytest.approx(0.5)
    assert class_signal(None, 10) is None and class_signal(1.0, 1) is None


def test_collapse_signs_and_the_rule():
    """No class signal flags alone; of the shape signs, any one shows on healthy fits, two flag."""

    def signs(rank=40.0, pc1=0.3, final=0.01, signal=0.9, classes=19):
        return collapse_signs(rank, pc1, final, 0.5, classes, 128, signal=signal)

    assert not any(signs().values()) and not is_collapsed(signs())
    assert signs(signal=0.19)["no_class_signal"] and is_collapsed(signs(signal=0.19))
    assert not signs(signal=0.2)["no_class_signal"] and not signs(signal=None)["no_class_signal"]
    assert signs(rank=8.9)["low_rank"] and not signs(rank=9.0)["low_rank"]  # below (19 - 1) / 2
    assert signs(pc1=0.51)["one_direction"] and not signs(pc1=0.5)["one_direction"]
    assert signs(final=0.45)["stuck_loss"] and not signs(final=0.44)["stuck_loss"]  # 90% of 0.5
    assert not collapse_signs(40.0, 0.3, 0.45, None, 19, 128)["stuck_loss"]
    for one in ({"rank": 8.0}, {"pc1": 0.9}, {"final": 0.5}):
        assert not is_collapsed(signs(**one))
    for two in ({"rank": 8.0, "pc1": 0.9}, {"rank": 8.0, "final": 0.5}, {"pc1": 0.9, "final": 0.5}):
        assert is_collapsed(signs(**two))
    # Two or three classes: a line or a plane is enough, so rank never counts as low there.
    assert not signs(rank=1.0, classes=2)["low_rank"] and not signs(rank=1.0, classes=3)["low_rank"]
    assert signs(rank=1.0, classes=4)["low_rank"]


def test_training_health_record_entry():
    history = [0.5 * 0.97**i for i in range(600)]
    health = training_health(embedding_spread(_isotropic(), 0.95), 10, history, 0.5, every=10, steps=6000)
    assert health["collapsed"] is False and not any(health["signs"].values())
    assert health["final_loss"] == pytest.approx(history[-1], rel=1e-5)
    assert health["class_signal"] == pytest.approx(0.9444, abs=1e-4) and health["rule"] == 2
    json.dumps(health)
    # A stuck loss alone is no collapse (the embedding is spread out); without a class signal it is.
    stuck = training_health(embedding_spread(_isotropic()), 10, [0.5] * 60, 0.5, every=10, steps=600)
    assert stuck["signs"]["stuck_loss"] and stuck["class_signal"] is None and stuck["collapsed"] is False
    chance = training_health(embedding_spread(_isotropic(), 0.1), 10, [0.5] * 60, 0.5, every=10, steps=600)
    assert chance["signs"]["no_class_signal"] and chance["collapsed"] is True


def test_loss_curve_is_cut_to_about_100_points_keeping_the_mean_and_the_last_step():
    history = [float(i) for i in range(601)]  # 6,001 steps in windows of 10, the last one short
    curve = loss_curve(history, every=10, steps=6001)
    assert len(curve["step"]) == len(curve["loss"]) <= 100
    assert curve["step"][-1] == 6001 and curve["step"][0] == 70
    assert curve["loss"][0] == pytest.approx(sum(range(7)) / 7)
    short = loss_curve([0.3, 0.2, 0.1], every=10, steps=25)
    assert short == {"step": [10, 20, 25], "loss": [0.3, 0.2, 0.1]}


class OnePoint(nn.Module):
    """A trunk that embeds every image at the same (learnable) point: a collapse by construction."""

    def __init__(self, shape, size):
        super().__init__()
        self.point = nn.Parameter(torch.randn(size, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return self.point.expand(x.shape[0], -1)


@pytest.mark.parametrize(
    "name, params",
    [
        ("siamese", {}),
        ("siamese", {"reduction": "mean-nonzero", "pair_positive_share": 0.3}),
        ("mean-anchor-triplet", {}),
        ("mined-triplet", {"miner": "hard"}),
        ("mined-triplet", {"miner": "batch-hard"}),
    ],
)
def test_declared_collapse_value_is_the_loss_of_a_collapsed_embedding(
    name, params, digits_splits, monkeypatch
):
    monkeypatch.setattr(methods.base, "build_trunk", lambda trunk, shape, size: OnePoint(shape, size))
    method = create_method(name, **params).fit(digits_splits.train, budget=Budget(steps=20, batch_images=48))
    assert method.loss_history_ == pytest.approx([method.collapse_loss()] * 2, rel=1e-6)


def test_classifier_collapse_value_is_the_entropy_of_the_drawn_classes(digits_splits, monkeypatch):
    monkeypatch.setattr(methods.base, "build_trunk", lambda trunk, shape, size: OnePoint(shape, size))
    budget = Budget(steps=300, batch_images=96, lr=0.05)
    method = create_method("classifier").fit(digits_splits.train, budget=budget)
    counts = torch.tensor(list(method.sampling_["anchor_counts"].values()), dtype=torch.float64)
    p = counts / counts.sum()
    assert method.collapse_loss() == pytest.approx(float(-(p * p.log()).sum()))
    # With nothing to tell images apart the head can only learn the class prior.
    assert method.loss_history_[-1] == pytest.approx(method.collapse_loss(), rel=0.03)


@pytest.fixture(scope="module")
def collapsed_run(tmp_path_factory):
    """One siamese cell at learning rate 0.1 (100x the default): the trunk dies within 30 steps,
    a known collapse. Returns the run directory and what the run printed on stderr."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("collapsed") / "run"
    err = io.StringIO()
    args = ["run", "--method", "siamese", "--scheme", "uniform", "--quick", "--steps", "30", "--lr", "0.1"]
    with contextlib.redirect_stderr(err):
        assert main([*args, "--executor", "local", "--out", str(out)]) == 0
    return out, err.getvalue()


def test_a_collapsing_run_is_flagged_warned_and_reported(collapsed_run):
    out, stderr = collapsed_run
    (record,) = read_records(out)
    health = record["health"]
    assert health["collapsed"] is True and health["effective_rank"] < 3 and health["signs"]["stuck_loss"]
    assert health["signs"]["no_class_signal"] and health["rule"] == 2
    assert health["loss_curve"]["step"][-1] == 30 and health["collapse_loss"] == 0.5
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: siamese / uniform / seed 0 collapsed (")
    text = (out / "report.md").read_text()
    assert "### Training health" in text and "## inspection · trunk mlp, 30 steps, inputs pixel" in text
    assert "| siamese  | uniform  | 1 of 1      | 0 " in text
    assert (out / "plots" / "training-loss.png").stat().st_size > 5000
    assert "carry no class signal" in text and " class signal " in text  # rule 2, and its column
    assert "- **Inputs:** `pixel`: each pixel standardized with the training split's" in text


def test_report_states_the_rule_its_records_were_flagged_by(collapsed_run, tmp_path):
    """Records written before rule 2 keep their flag, and their report states rule 1 without a
    class-signal column (committed reports rebuild byte for byte)."""
    from bench.grid.record import Record
    from bench.report.cells import Cells
    from bench.report.health import RULE_TEXTS, health_section

    out, _ = collapsed_run
    (record,) = read_records(out)
    old = {k: v for k, v in record["health"].items() if k not in ("rule", "class_signal")}
    old["signs"] = {k: v for k, v in old["signs"].items() if k != "no_class_signal"}
    for health, rule, column in ((record["health"], 2, True), (old, 1, False)):
        text = "\n".join(
            health_section(Cells([Record.from_dict({**record, "health": health})]), tmp_path / "plots", "")
        )
        assert RULE_TEXTS[rule] in text and (" class signal " in text) is column
        assert "| 1 of 1 " in text


def test_rerun_warns_when_the_record_comes_from_another_machine(collapsed_run, capsys):
    from rich.console import Console

    from bench.cli.browse import _warn_other_machine
    from bench.core.environment import environment

    console = Console(record=True, width=200)
    _warn_other_machine(environment("cpu"), environment("cpu"), console)
    assert console.export_text() == ""  # the same machine: nothing to say
    out, _ = collapsed_run
    record = json.loads((out / "results.jsonl").read_text())
    record["env"]["cpu"], record["env"]["cpu_capability"] = "Other CPU 9000", "AVX2"
    (out / "results.jsonl").write_text(json.dumps(record) + "\n")
    main(["rerun", str(out), record["hash"]])
    shown = capsys.readouterr().out
    assert "fingerprint differs from the record's" in shown and "far from convergence" in shown
    assert "Other CPU 9000" in shown and environment("cpu")["cpu"] in shown


def test_records_carry_a_machine_fingerprint():
    from bench.core.environment import FINGERPRINT_KEYS, environment, fingerprint

    env = environment("cpu")
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["numpy"] and env["torch"] == torch.__version__ and env["blas"].startswith("torch ")
    machine = fingerprint(env)
    assert set(machine) == set(FINGERPRINT_KEYS) and machine["cpu"] == env["cpu"]
    assert fingerprint({"torch": "2.13.0"})["cpu"] is None


def test_records_without_inputs_or_health_add_nothing_to_the_report(tmp_path):
    from pathlib import Path

    from bench.grid.record import INPUTS_FIELD, Record
    from bench.report import load_records
    from bench.report.build import study_title
    from bench.report.cells import Cells, study_inputs, study_key
    from bench.report.health import health_section
    from bench.report.overview import setup_section

    records = load_records(Path(__file__).parent / "fixtures" / "run")
    # Made before inputs and health existed: the reader reads their inputs as raw, not recorded.
    assert all(
        r.config.inputs == "raw" and not r.recorded(INPUTS_FIELD) and r.health is None for r in records
    )
    cells = Cells(records)
    assert health_section(cells, tmp_path / "plots", "") == []
    assert not (tmp_path / "plots").exists()
    setup = "\n".join(setup_section(records, cells))
    assert "Inputs" not in setup and "cpu_capability" not in setup
    assert study_title(records[0].config, study_inputs(records)) == "inspection · trunk mlp, 600 steps"
    # New raw records share a study with the old ones (made on raw pixels), and name it.
    new = [Record.from_dict(records[0].to_dict())]
    assert new[0].recorded(INPUTS_FIELD)
    assert study_key(new[0]) == study_key(records[0]) and study_inputs(records + new) == "raw"
