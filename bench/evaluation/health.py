"""Training health: did a fit learn a spread-out embedding, or collapse?

Pure functions of the test embeddings, their nearest-neighbour class precision and the
training-loss history, so they hold for any method. Four signs (C classes, embedding size d):

- **no class signal:** the test embeddings' nearest training embedding has the query's class
  hardly more often than chance: the *class signal* ``(P - 1/C) / (1 - 1/C)``, with ``P`` the
  retrieval view's precision@1 averaged over classes (chance is 1/C for any class balance), is
  below ``SIGNAL_LIMIT`` (0.2). A fit collapsed to one point (plus noise) scores about 0;
- **low rank:** the effective rank of the test embeddings (RankMe, Garrido et al. 2023) is
  below half of ``min(C - 1, d)``, the directions C classes need to sit apart (never for
  C <= 3, where a line or a plane separates them);
- **one direction:** more than half of the test embeddings' variance lies on their first
  principal component;
- **stuck loss:** the final training loss is at least ``STUCK_SHARE`` of the loss's *collapse
  value*, the loss a fit whose embeddings all sit at one point scores (each method's
  ``collapse_loss``).

A cell is ``collapsed`` when it has no class signal, or when two of the other three signs show.
Each of those three alone shows on healthy fits: one direction where classes form super-classes
(the Fashion-MNIST CNN classifier, 54-61% on PC1 at 85-88.5% accuracy), a low rank where a few
directions separate the classes well (raw-pixel classifiers on the inspection set, rank 5.8 at
93%), a stuck loss where an average over the active triplets stays near the margin (a tuned
mined triplet, ``all`` miner, 2% above its collapse value at rank 10.5). Two together are
dimensional collapse: the raw-pixel siamese and mined-triplet cells of the inspection set (rank
2.1-4.6 of the 18 directions 19 classes need, 60-92% on PC1). ``docs/health.md`` holds the table
of constructed and recorded cases the rule is checked on (``tests/test_health_cases.py``).
"""

from __future__ import annotations

import math

import torch

#: Class signal below this counts as no class information (a collapse to one point scores ~0).
SIGNAL_LIMIT = 0.2
#: Share of the variance on the first principal component above which it shows one direction.
PC1_SHARE_LIMIT = 0.5
#: Effective rank below ``min(C - 1, d)`` times this counts as low.
RANK_SHARE_LIMIT = 0.5
#: Final loss at or above this share of the collapse value counts as stuck.
STUCK_SHARE = 0.9
#: The signs of which two flag a collapse (with or without a class signal).
SHAPE_SIGNS = ("low_rank", "one_direction", "stuck_loss")
#: The rule a record's ``collapsed`` flag follows. Version 1 (records without ``rule``): any of
#: PC1 share above max(0.5, 2/C), effective rank below min(C, d)/4, a stuck loss.
RULE_VERSION = 2
#: Most points of the loss curve a record keeps.
CURVE_POINTS = 100


def effective_rank(embeddings: torch.Tensor) -> float:
    """RankMe: ``exp`` of the entropy of the normalized singular values of ``embeddings`` (n, d).

    The singular values ``s`` of the (uncentered) embedding matrix, ``p = s / sum(s)``, and
    ``exp(-sum p log p)``: 1 when every embedding lies on one line, ``min(n, d)`` when all
    directions carry equal weight. 0 for an empty or all-zero matrix.
    """
    if embeddings.numel() == 0:
        return 0.0
    s = torch.linalg.svdvals(embeddings.to(torch.float64))
    total = float(s.sum())
    if total <= 0 or not math.isfinite(total):
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def pc1_share(embeddings: torch.Tensor) -> float:
    """Share of the total variance of ``embeddings`` (n, d) on their first principal component
    (0 for fewer than two embeddings or no variance)."""
    if embeddings.shape[0] < 2:
        return 0.0
    centred = embeddings.to(torch.float64) - embeddings.to(torch.float64).mean(0)
    variances = torch.linalg.svdvals(centred).square()
    total = float(variances.sum())
    return float(variances[0] / total) if total > 0 else 0.0


def loss_curve(history: list[float], every: int, steps: int, points: int = CURVE_POINTS) -> dict:
    """The training-loss history cut to at most ``points`` points, for a record and its plot.

    Args:
        history: the mean loss of each window of ``every`` steps (the last window may be
            shorter and ends at ``steps``).
        every: steps per window.
        steps: total steps.
        points: most points kept; consecutive windows are averaged in equal groups.

    Returns:
        ``{"step": [...], "loss": [...]}``: each point's last step and its mean loss (6
        significant digits).
    """
    ends = [min((i + 1) * every, steps) for i in range(len(history))]
    group = max(1, math.ceil(len(history) / points))
    out_steps, out_loss = [], []
    for start in range(0, len(history), group):
        chunk = history[start : start + group]
        out_steps.append(ends[start + len(chunk) - 1])
        out_loss.append(float(f"{sum(chunk) / len(chunk):.6g}"))
    return {"step": out_steps, "loss": out_loss}


def class_signal(precision_at_1: float | None, classes: int) -> float | None:
    """How far nearest-neighbour retrieval gets from chance towards perfect: ``(P - 1/C) / (1 - 1/C)``.

    Args:
        precision_at_1: share of queries whose nearest reference has their class, averaged over
            classes (the retrieval view's ``precision_at_1_per_class``), or None.
        classes: number of classes C.

    Returns:
        1 when every nearest neighbour has the query's class, about 0 for neighbours drawn at
        random (chance is 1/C whatever the class balance), None without a precision or for
        fewer than two classes.
    """
    if precision_at_1 is None or classes < 2 or not math.isfinite(precision_at_1):
        return None
    chance = 1 / classes
    return (precision_at_1 - chance) / (1 - chance)


def collapse_signs(
    rank: float,
    pc1: float,
    final_loss: float | None,
    collapse_loss: float | None,
    classes: int,
    dim: int,
    *,
    signal: float | None = None,
) -> dict[str, bool]:
    """Which of the four signs of the module docstring show: ``no_class_signal`` (False when the
    class signal is unknown), ``low_rank``, ``one_direction`` and ``stuck_loss``."""
    return {
        "no_class_signal": signal is not None and signal < SIGNAL_LIMIT,
        "low_rank": rank < RANK_SHARE_LIMIT * min(classes - 1, dim),
        "one_direction": pc1 > PC1_SHARE_LIMIT,
        "stuck_loss": final_loss is not None
        and collapse_loss is not None
        and collapse_loss > 0
        and final_loss >= STUCK_SHARE * collapse_loss,
    }


def is_collapsed(signs: dict[str, bool]) -> bool:
    """The rule: no class signal, or at least two of the three shape signs (``SHAPE_SIGNS``)."""
    return bool(signs.get("no_class_signal")) or sum(bool(signs.get(k)) for k in SHAPE_SIGNS) >= 2


def embedding_spread(embeddings: torch.Tensor, precision_at_1: float | None = None) -> dict:
    """``effective_rank``, ``pc1_share`` and ``dimensions`` (d) of embeddings (n, d), and
    ``precision_at_1``: the share of them whose nearest training embedding has their class,
    averaged over classes (the retrieval view's ``precision_at_1_per_class``; None if not given)."""
    return {
        "effective_rank": effective_rank(embeddings),
        "pc1_share": pc1_share(embeddings),
        "dimensions": int(embeddings.shape[1]),
        "precision_at_1": precision_at_1,
    }


def training_health(
    spread: dict,
    classes: int,
    loss_history: list[float],
    collapse_loss: float | None,
    every: int,
    steps: int,
) -> dict:
    """The ``health`` entry of a record.

    Args:
        spread: ``embedding_spread`` of the test split's embeddings (without a
            ``precision_at_1`` the class signal is unknown and only the shape signs count).
        classes: number of classes.
        loss_history: mean training loss per window of ``every`` steps.
        collapse_loss: the loss a collapsed embedding scores, or None when the method's loss
            has no such value.
        every: steps per loss window.
        steps: training steps.

    Returns:
        ``effective_rank``, ``pc1_share``, ``class_signal``, ``final_loss``, ``collapse_loss``,
        ``signs`` (the four of ``collapse_signs``), ``collapsed`` (``is_collapsed``), ``rule``
        (``RULE_VERSION``) and ``loss_curve``.
    """
    rank, pc1 = spread["effective_rank"], spread["pc1_share"]
    signal = class_signal(spread.get("precision_at_1"), classes)
    final = float(loss_history[-1]) if loss_history else None
    signs = collapse_signs(rank, pc1, final, collapse_loss, classes, spread["dimensions"], signal=signal)
    return {
        "effective_rank": round(rank, 4),
        "pc1_share": round(pc1, 4),
        "class_signal": None if signal is None else round(signal, 4),
        "final_loss": None if final is None else float(f"{final:.6g}"),
        "collapse_loss": None if collapse_loss is None else float(f"{collapse_loss:.6g}"),
        "signs": signs,
        "collapsed": is_collapsed(signs),
        "rule": RULE_VERSION,
        "loss_curve": loss_curve(loss_history, every, steps),
    }
