"""The tuning plots: each method's optimization history and its scores against the learning rate."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from bench.core.atomic import write_bytes_atomic  # noqa: E402
from bench.sampling.budget import LR_PARAM  # noqa: E402
from bench.tune.outputs import MethodSummary  # noqa: E402

PLOTS_DIR = "plots"


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, lambda fh: fh.write(buffer.getvalue()))


def _points(summary: MethodSummary, state: TrialState) -> list[tuple[int, float, float | None]]:
    """(trial number, value, lr) of the trials in ``state``; a pruned trial's value is its last
    reported running score."""
    out = []
    for t in summary.trials:
        if t.state != state:
            continue
        value = t.value if state == TrialState.COMPLETE else (t.intermediate_values or {}).get(t.last_step)
        if value is not None:
            out.append((t.number, float(value), t.params.get(LR_PARAM)))
    return out


def write_plots(
    out: Path, summaries: list[MethodSummary], direction: str, label: str
) -> list[tuple[str, str]]:
    """Draw the optimization history and score-vs-lr plots; return (title, relative path) pairs."""
    shown = [s for s in summaries if s.trials]
    if not shown:
        return []
    links = []
    for kind, title in (
        ("history", "Optimization history"),
        ("lr", "Validation score against learning rate"),
    ):
        fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.4), squeeze=False)
        for ax, s in zip(axes[0], shown, strict=True):
            complete, pruned = _points(s, TrialState.COMPLETE), _points(s, TrialState.PRUNED)
            x = 0 if kind == "history" else 2
            if complete:
                ax.scatter([p[x] for p in complete], [p[1] for p in complete], s=18, label="complete")
            if pruned:
                ax.scatter(
                    [p[x] for p in pruned],
                    [p[1] for p in pruned],
                    s=18,
                    marker="x",
                    c="grey",
                    label="pruned (last probe)",
                )
            if kind == "history" and complete:
                ordered = sorted(complete)
                best, line = None, []
                for _, value, _ in ordered:
                    best = value if best is None else (max if direction == "maximize" else min)(best, value)
                    line.append(best)
                ax.step([p[0] for p in ordered], line, where="post", c="black", lw=1, label="best so far")
            if kind == "lr":
                ax.set_xscale("log")
            ax.set_title(s.method, fontsize=10)
            ax.set_xlabel("trial" if kind == "history" else "learning rate")
            ax.set_ylabel(label)
            ax.legend(fontsize=7)
        fig.suptitle(title, fontsize=11)
        path = out / PLOTS_DIR / f"tune-{kind}.png"
        _save(fig, path)
        links.append((title, f"{PLOTS_DIR}/{path.name}"))
    return links
