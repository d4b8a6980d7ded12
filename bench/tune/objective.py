"""One trial: fit a method on each tuning seed, probe and score it on the validation split.

The test split is never embedded or scored here: a fit draws from the training split, the
probes and the score embed the training split (the reference set) and the validation split
(the queries), and nothing else.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from bench.core.errors import BenchError
from bench.datasets.image_set import ImageSet
from bench.evaluation.evaluate import mean_images
from bench.evaluation.metrics import classification_metrics
from bench.evaluation.retrieval import retrieval_metrics
from bench.evaluation.rules import predict_rules
from bench.evaluation.test_views import with_test_views
from bench.grid.config import CellConfig
from bench.grid.runner import create_cell_method, prepare_cell
from bench.tune.config import TuneConfig


class Pruned(Exception):
    """The pruner stopped the trial (or its training diverged) after ``steps`` steps."""

    def __init__(self, steps: int, reason: str) -> None:
        super().__init__(reason)
        self.steps = steps
        self.reason = reason


def validation_score(method: Any, train: ImageSet, val: ImageSet, config: TuneConfig) -> float:
    """The objective of a fitted (or training) method on the validation split.

    The training split is the reference set and the validation images are the queries, as the
    test images are in ``bench run``; the score uses the grid's headline rule and costs.

    Raises:
        BenchError: the objective is undefined on this validation split (e.g. a cost without
            any defect), or the headline rule does not apply to the method.
    """
    grid = config.grid
    # The evaluation's test-time views (the training augmentation's flips), as in ``bench run``.
    method = with_test_views(method, train.augment)
    with torch.no_grad():
        train_emb = method.embed(train.images)
        val_emb = method.embed(val.images)
        if config.objective == "map_at_r":
            value = retrieval_metrics(val_emb, val.labels, train_emb, train.labels)["map_at_r"]
        else:
            rule = grid.headline_rule
            c = train.num_classes
            mean_emb = (
                method.embed(mean_images(train.images, train.labels, c)) if rule == "mean_image" else None
            )
            head = method.predict_head(val.images) if rule == "head" else None
            preds = predict_rules(train_emb, train.labels, val_emb, mean_emb, c, head)
            if rule not in preds:
                raise BenchError(f"headline rule {rule!r} does not apply to {method.name}")
            metrics = classification_metrics(
                val.labels,
                preds[rule],
                val.classes,
                val.good_index,
                grid.cost_escape,
                grid.cost_overkill,
                grid.good_share,
            )
            cost = metrics.get("cost_per_1000") or {}
            value = metrics["accuracy"] if config.objective == "accuracy" else cost.get("production_mix")
    if value is None:
        raise BenchError(f"the objective {config.objective!r} is undefined on this validation split")
    return float(value)


def _modes(method: Any) -> list[tuple[nn.Module, bool]]:
    return [(m, m.training) for m in vars(method).values() if isinstance(m, nn.Module)]


@dataclass
class TrialRun:
    """What a trial did: a score per fit, the training steps it consumed and its training time."""

    scores: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    train_s: float = 0.0

    def mean(self, extra: float | None = None) -> float:
        values = [s["score"] for s in self.scores] + ([] if extra is None else [extra])
        return sum(values) / len(values)


def trial_cells(config: TuneConfig, method: str, params: dict[str, Any]) -> list[CellConfig]:
    """The fits of one trial: the method with ``params`` on every tuning seed x scheme, built
    by the grid's own ``cells`` so they are what ``bench run`` would build."""
    grid = replace(config.grid, methods=(method,), seeds=config.seeds, method_params={method: params})
    return grid.cells()


def run_trial(
    trial: Any, config: TuneConfig, method: str, params: dict[str, Any], device: str, run: TrialRun
) -> float:
    """Fit and score every cell of the trial; return the mean validation score.

    After each probe and each fit, the running mean (finished fits plus the current probe) is
    reported to ``trial`` at the trial's cumulative training step, so every trial of a study
    is compared with the others at the same point of the same schedule.

    Raises:
        Pruned: the pruner stopped the trial, or its training loss diverged (a learning rate
            too high for the method is a bad value, not a broken trial).
    """
    from methods.base import TrainingDiverged

    steps = config.grid.budget.steps
    for index, cell in enumerate(trial_cells(config, method, params)):
        offset = index * steps
        splits, plan = prepare_cell(cell)
        train, val = splits.train, splits.val
        model, budget = create_cell_method(cell)

        def probe(step: int, total: int, model=model, offset=offset, train=train, val=val) -> None:
            if step >= total or step % config.probe_every:
                return
            modes = _modes(model)
            value = validation_score(model, train, val, config)
            for module, training in modes:
                module.train(training)
            trial.report(run.mean(value), offset + step)
            if trial.should_prune():
                raise Pruned(offset + step, f"pruned at step {offset + step}")

        started = time.perf_counter()
        try:
            model.fit(train, val, plan=plan, budget=budget, seed=cell.seed, device=device, progress=probe)
        except Pruned as exc:
            run.steps += exc.steps - offset
            raise
        except TrainingDiverged as exc:
            run.steps += exc.step
            raise Pruned(offset + exc.step, f"diverged: {exc}") from None
        finally:
            run.train_s += time.perf_counter() - started
        run.steps += 0 if model.label_free else steps  # a label-free baseline trains nothing
        score = validation_score(model, train, val, config)
        if not math.isfinite(score):
            raise BenchError(f"non-finite validation score {score}")
        run.scores.append({"seed": cell.seed, "scheme": cell.scheme, "score": score})
        trial.report(run.mean(), offset + steps)
        if index + 1 < config.fits_per_trial and trial.should_prune():
            raise Pruned(offset + steps, f"pruned at step {offset + steps}")
    return run.mean()
