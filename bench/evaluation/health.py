"""Training health: did a fit learn a spread-out embedding, or collapse?

Pure functions of the test embeddings and the training-loss history, so they hold for any
method. A cell is ``collapsed`` when at least one of three signs shows (C classes, embedding
size d):

- **one direction:** more than ``max(0.5, 2 / C)`` of the test embeddings' variance lies on
  their first principal component (a healthy embedding of C classes spreads it over up to
  C - 1 directions; the 2 / C keeps two- and three-class sets from tripping it);
- **low rank:** the effective rank of the test embeddings (RankMe, Garrido et al. 2023) is
  below ``min(C, d) / 4``: they fill far fewer dimensions than the classes need (a line has
  rank 1, an arc about 2);
- **stuck loss:** the final training loss is at least ``STUCK_SHARE`` of the loss's *collapse
  value*, the loss a fit whose embeddings all sit at one point scores (a margin loss's
  margin; each method's ``collapse_loss``): training never got clear of it.

On the default inspection set (19 classes) the thresholds are 0.5 and 4.75. Measured there
(README, *Findings*): the flagged raw-pixel siamese and mined-triplet cells show PC1 shares of
0.61-0.92 and ranks of 2.3-5.2; standardized-input cells of every method at most 0.31 and at
least 12.9.
"""

from __future__ import annotations

import math

import torch

#: Share of the variance on the first principal component above which (and above 2 / C) a
#: cell counts as collapsed.
PC1_SHARE_LIMIT = 0.5
#: Effective rank below ``min(C, d)`` times this counts as collapsed.
RANK_SHARE_LIMIT = 0.25
#: Final loss at or above this share of the collapse value counts as stuck.
STUCK_SHARE = 0.9
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


def collapse_signs(
    rank: float, pc1: float, final_loss: float | None, collapse_loss: float | None, classes: int, dim: int
) -> dict[str, bool]:
    """Which of the three signs of the module docstring show: ``one_direction``, ``low_rank``
    and ``stuck_loss``."""
    return {
        "one_direction": pc1 > max(PC1_SHARE_LIMIT, 2 / max(classes, 1)),
        "low_rank": rank < RANK_SHARE_LIMIT * min(classes, dim),
        "stuck_loss": final_loss is not None
        and collapse_loss is not None
        and collapse_loss > 0
        and final_loss >= STUCK_SHARE * collapse_loss,
    }


def embedding_spread(embeddings: torch.Tensor) -> dict:
    """``effective_rank``, ``pc1_share`` and ``dimensions`` (d) of embeddings (n, d)."""
    return {
        "effective_rank": effective_rank(embeddings),
        "pc1_share": pc1_share(embeddings),
        "dimensions": int(embeddings.shape[1]),
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
        spread: ``embedding_spread`` of the test split's embeddings.
        classes: number of classes.
        loss_history: mean training loss per window of ``every`` steps.
        collapse_loss: the loss a collapsed embedding scores, or None when the method's loss
            has no such value (then only the embedding's shape can flag a collapse).
        every: steps per loss window.
        steps: training steps.

    Returns:
        ``effective_rank``, ``pc1_share``, ``final_loss``, ``collapse_loss``, ``signs`` (the
        three of ``collapse_signs``), ``collapsed`` (any of them) and ``loss_curve``.
    """
    rank, pc1 = spread["effective_rank"], spread["pc1_share"]
    final = float(loss_history[-1]) if loss_history else None
    signs = collapse_signs(rank, pc1, final, collapse_loss, classes, spread["dimensions"])
    return {
        "effective_rank": round(rank, 4),
        "pc1_share": round(pc1, 4),
        "final_loss": None if final is None else float(f"{final:.6g}"),
        "collapse_loss": None if collapse_loss is None else float(f"{collapse_loss:.6g}"),
        "signs": signs,
        "collapsed": any(signs.values()),
        "loss_curve": loss_curve(loss_history, every, steps),
    }
