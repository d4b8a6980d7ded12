"""``python -m bench profile`` runs end to end and prints both ratio columns."""

from __future__ import annotations

import os
import subprocess
import sys


def test_profile_prints_both_ratios():
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "profile", "--steps", "20", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "vs bare loop" in proc.stdout
    assert "vs per-item pipeline" in proc.stdout
    assert "vs per-item, tensor rows" in proc.stdout
    assert "vs bare loop, CPU time" in proc.stdout
    for name in (
        "bare loop",
        "per-item pipeline (table rows)",
        "per-item pipeline (tensor rows)",
        "mined-triplet",
    ):
        assert name in proc.stdout


def test_profile_tables_survive_a_pipe_and_a_narrow_terminal():
    """Piped at COLUMNS=40, every name and header is whole (no ``mean-ancho…``): a markdown table."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "profile", "--steps", "5", "--rounds", "1"]
        + ["--method", "mean-anchor-triplet", "--method", "mined-triplet"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "40"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout and "..." not in proc.stdout
    cells = [
        [c.strip() for c in line.split("|")[1:-1]]
        for line in proc.stdout.splitlines()
        if line.startswith("|")
    ]
    assert {"vs per-item, tensor rows", "vs bare loop, CPU time"} <= set(cells[0])
    assert {"mean-anchor-triplet", "mined-triplet", "per-item pipeline (tensor rows)"} <= {
        row[0] for row in cells
    }


def test_per_item_pipelines_read_the_same_triplets_from_a_table_and_a_tensor(digits_splits):
    """The reference-style pipeline decodes datasets-table rows into the very images the
    tensor-row pipeline indexes: only where the pixels come from differs."""
    import torch

    from bench.profile.training import PerItemTriplets

    train = digits_splits.train
    table = PerItemTriplets(train, seed=3, rows="table")
    tensor = PerItemTriplets(train, seed=3, rows="tensor")
    for i in (0, 5, len(train) - 1):
        for a, b in zip(table[i], tensor[i], strict=True):
            assert a.dtype == torch.float32 and a.shape == tuple(train.image_shape)
            assert torch.equal(a, b)
    means = table[0][0]
    y = int(train.labels[0])
    assert torch.allclose(means, train.images[train.labels == y].float().mean(0))


def test_evaluation_profile_times_evaluate_against_its_distance_computation():
    """``--eval``'s figures, on a small problem: both times, measured in the same rounds."""
    from bench.profile.evaluation import profile_evaluation

    out = profile_evaluation(references=3000, queries=500, rounds=1)
    assert out["distance_s"] > 0 and out["eval_s"] > out["embed_s"] > 0
    assert out["eval_vs_distance"] == out["eval_s"] / out["distance_s"]
    assert out["eval_vs_distance_cpu"] > 0
    assert out["search_and_metrics_s"] == out["eval_s"] - out["embed_s"]
