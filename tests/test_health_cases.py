"""The ``collapsed`` rule on a table of cases whose truth is known: constructed embeddings (the
rule runs on them end to end: spread, retrieval precision@1, health) and recorded cells (the
summary numbers of committed records in ``results/``). ``docs/health.md`` shows the same table;
the last test holds the two to the same flags and truths."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from bench.evaluation.health import (
    class_signal,
    collapse_signs,
    embedding_spread,
    is_collapsed,
    training_health,
)
from bench.evaluation.retrieval import retrieval_metrics

D = 128  # the embedding size of every study


def _unit(g: torch.Generator) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(D, generator=g), dim=0)


def _binary_point(n, g, fixed):
    """Every image at one point plus noise: no class information (1-NN accuracy 50%)."""
    y = torch.arange(n) % 2
    return torch.ones(D) + 0.01 * torch.randn(n, D, generator=g), y


def _line(separated: bool):
    def build(n, g, fixed):
        """Two classes on one line, apart (a healthy binary embedding) or mixed along it."""
        y = torch.arange(n) % 2
        offset = torch.where(y == 0, -2.0, 2.0) if separated else torch.zeros(n)
        t = offset + 0.5 * torch.randn(n, generator=g)
        return t[:, None] * _unit(fixed) + 0.001 * torch.randn(n, D, generator=g), y

    return build


def _super_classes(n, g, fixed):
    """10 separable classes in two super-classes far apart on one axis: most variance on PC1."""
    y = torch.arange(n) % 10
    centres = 0.13 * torch.randn(10, D, generator=fixed)
    centres[:, 0] += torch.where(torch.arange(10) < 5, 4.0, -4.0)
    return centres[y] + 0.25 * torch.randn(n, D, generator=g), y


def _clusters(classes: int, spread: float):
    def build(n, g, fixed):
        """``classes`` well separated Gaussian clusters filling every direction."""
        y = torch.arange(n) % classes
        return torch.randn(classes, D, generator=fixed)[y] + spread * torch.randn(n, D, generator=g), y

    return build


def _weak_binary(n, g, fixed):
    """Two overlapping classes: a weak but spread-out embedding (1-NN about 70%)."""
    y = torch.arange(n) % 2
    return 0.012 * torch.randn(2, D, generator=fixed)[y] + torch.randn(n, D, generator=g) / D**0.5, y


def _classes_on_a_line(n, g, fixed):
    """19 classes in order along one line: classes mostly apart, 2 directions for the 18 needed
    (the dimensional collapse of the raw-pixel siamese and mined-triplet cells)."""
    y = torch.arange(n) % 19
    u, v = _unit(fixed), _unit(fixed)
    t = y + 0.3 * torch.randn(n, generator=g)
    s = 10 + 0.05 * torch.randn(n, generator=g)
    return t[:, None] * u + s[:, None] * v + 0.002 * torch.randn(n, D, generator=g), y


def _one_point(n, g, fixed):
    """19 classes, every image at exactly one point (a dead trunk)."""
    return torch.ones(n, D), torch.arange(n) % 19


def _six_directions(n, g, fixed):
    """19 separable classes in a 6-dimensional subspace (rank 5.7, below 9, PC1 0.38)."""
    y = torch.arange(n) % 19
    basis = torch.linalg.qr(torch.randn(D, 6, generator=fixed))[0].T
    return (torch.randn(19, 6, generator=fixed)[y] + 0.15 * torch.randn(n, 6, generator=g)) @ basis, y


@dataclass(frozen=True)
class Constructed:
    name: str
    classes: int
    build: Callable
    final_loss: float | None
    collapse_loss: float | None
    collapsed: bool  # the truth


CONSTRUCTED = [
    Constructed("binary, one point plus noise", 2, _binary_point, None, None, True),
    Constructed("binary, one point plus noise, stuck loss", 2, _binary_point, 0.5, 0.5, True),
    Constructed("binary, one line, classes mixed along it", 2, _line(False), None, None, True),
    Constructed("binary, one line, classes apart", 2, _line(True), 0.01, 0.5, False),
    Constructed("binary, weak (overlapping classes)", 2, _weak_binary, 0.3, 0.5, False),
    Constructed("4 classes, healthy", 4, _clusters(4, 0.3), 0.01, 0.2, False),
    Constructed("10 separable classes in two super-classes", 10, _super_classes, 0.01, 0.2, False),
    Constructed("19 classes, healthy", 19, _clusters(19, 0.5), 0.01, 0.2, False),
    Constructed(
        "19 classes, healthy, loss 2% above its collapse value", 19, _clusters(19, 0.5), 0.204, 0.2, False
    ),
    Constructed("19 separable classes in 6 directions", 19, _six_directions, 0.01, 0.2, False),
    Constructed("19 classes along one line", 19, _classes_on_a_line, 0.08, 0.2, True),
    Constructed("19 classes at exactly one point", 19, _one_point, 0.5, 0.5, True),
]


def health_of(case: Constructed) -> dict:
    """Train and test embeddings drawn alike, then the record's health entry on the test ones."""
    fixed, g = torch.Generator().manual_seed(100), torch.Generator().manual_seed(0)
    train_x, train_y = case.build(1900, g, fixed)
    fixed.manual_seed(100)
    test_x, test_y = case.build(950, g, fixed)
    p1 = retrieval_metrics(test_x, test_y, train_x, train_y)["precision_at_1_per_class"]
    history = [] if case.final_loss is None else [case.final_loss]
    return training_health(embedding_spread(test_x, p1), case.classes, history, case.collapse_loss, 10, 10)


@pytest.mark.parametrize("case", CONSTRUCTED, ids=lambda c: c.name)
def test_constructed_case_is_flagged_as_its_truth(case):
    assert health_of(case)["collapsed"] is case.collapsed


#: Committed records (``results/<study>/results.jsonl``, scheme ``uniform``): study, method,
#: seed, classes, effective rank, PC1 share, precision@1 per class (``metrics``), final loss,
#: collapse value, the truth. The last two rows: the tuned ``all``-miner cell of issue 24 (its
#: record is not committed and its precision not known, so only the shape signs count; its
#: dataset not known either, so with 10 and with 19 classes).
RECORDED = [
    ("fashion-mnist-cnn", "classifier", 0, 10, 23.223, 0.5796, 0.8377, 0.440855, 2.30257, False),
    ("fashion-mnist-cnn", "classifier", 1, 10, 22.8993, 0.5563, 0.8395, 0.467845, 2.30256, False),
    ("fashion-mnist-cnn", "classifier", 2, 10, 21.3124, 0.608, 0.8329, 0.42939, 2.30257, False),
    ("fashion-mnist-cnn-3x-steps", "classifier", 0, 10, 28.1296, 0.5447, 0.8683, 0.333804, 2.30257, False),
    ("fashion-mnist-cnn-3x-steps", "classifier", 1, 10, 26.5805, 0.5546, 0.866, 0.328076, 2.30258, False),
    ("fashion-mnist-cnn-3x-steps", "classifier", 2, 10, 26.5133, 0.5737, 0.8543, 0.340945, 2.30256, False),
    ("fashion-mnist-cnn", "siamese", 0, 10, 5.5977, 0.7712, 0.7849, 0.206912, 0.5, False),
    ("fashion-mnist-cnn", "siamese", 1, 10, 5.8101, 0.7928, 0.7789, 0.184045, 0.5, False),
    ("fashion-mnist-cnn", "siamese", 2, 10, 5.9941, 0.7492, 0.7789, 0.187533, 0.5, False),
    (
        "fashion-mnist-imbalanced",
        "mean-anchor-triplet",
        0,
        10,
        12.9422,
        0.5489,
        0.7822,
        0.0135595,
        0.2,
        False,
    ),
    ("inspection-inputs/raw", "siamese", 0, 19, 3.0573, 0.8478, 0.5667, 0.275322, 0.5, True),
    ("inspection-inputs/raw", "siamese", 1, 19, 4.5503, 0.7941, 0.6008, 0.305101, 0.5, True),
    ("inspection-inputs/raw", "siamese", 2, 19, 3.9059, 0.7205, 0.6442, 0.240155, 0.5, True),
    ("inspection-inputs/raw", "siamese", 3, 19, 2.344, 0.9156, 0.4766, 0.42298, 0.5, True),
    ("inspection-inputs/raw", "siamese", 4, 19, 2.5685, 0.8667, 0.496, 0.298352, 0.5, True),
    ("inspection-inputs/raw", "mined-triplet", 0, 19, 4.057, 0.712, 0.7469, 0.0847555, 0.2, True),
    ("inspection-inputs/raw", "mined-triplet", 1, 19, 2.0975, 0.9157, 0.7853, 0.0917466, 0.2, True),
    ("inspection-inputs/raw", "mined-triplet", 2, 19, 5.6627, 0.4483, 0.8072, 0.0855207, 0.2, False),
    ("inspection-inputs/raw", "mined-triplet", 3, 19, 4.2196, 0.5981, 0.9246, 0.081396, 0.2, True),
    ("inspection-inputs/raw", "mined-triplet", 4, 19, 3.2289, 0.6519, 0.7853, 0.0846934, 0.2, True),
    ("inspection-inputs/raw", "classifier", 2, 19, 5.7546, 0.392, 0.9213, 0.677969, 2.94437, False),
    ("issue 24", "mined-triplet (all, margin 0.026)", None, 10, 10.5, 0.26, None, 0.02655, 0.02593, False),
    ("issue 24", "mined-triplet (all, margin 0.026)", None, 19, 10.5, 0.26, None, 0.02655, 0.02593, False),
]


def recorded_name(row: tuple) -> str:
    study, method, seed, classes = row[:4]
    return f"{study} · {method} · " + (f"C = {classes}" if seed is None else f"seed {seed}")


def recorded_signs(row: tuple) -> dict[str, bool]:
    _, _, _, classes, rank, pc1, p1, final, collapse, _ = row
    return collapse_signs(rank, pc1, final, collapse, classes, D, signal=class_signal(p1, classes))


@pytest.mark.parametrize("row", RECORDED, ids=lambda r: recorded_name(r).replace(" · ", " / "))
def test_recorded_case_is_flagged_as_its_truth(row):
    assert is_collapsed(recorded_signs(row)) is row[-1]


def test_docs_table_shows_every_case_with_its_flag_and_truth():
    text = (Path(__file__).parents[1] / "docs" / "health.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3 and cells[-1] in ("collapsed", "healthy"):
            rows[re.sub(r"\s+", " ", cells[0])] = (cells[-2], cells[-1])

    def word(collapsed: bool) -> str:
        return "collapsed" if collapsed else "healthy"

    expected = {c.name: (word(health_of(c)["collapsed"]), word(c.collapsed)) for c in CONSTRUCTED}
    for row in RECORDED:
        expected[recorded_name(row)] = (word(is_collapsed(recorded_signs(row))), word(row[-1]))
    assert {name: rows.get(name) for name in expected} == expected
