"""The shared runner: one cell = dataset -> split -> plan -> method.fit -> evaluate -> record.

``run_cell`` is a pure function of its CellConfig (plus the device it runs on), so any
executor can run it: in this process, in a process pool, or on a Dask worker. Only the driver
(``bench.grid.driver``) writes records.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bench.core.environment import environment
from bench.core.errors import BenchError
from bench.core.memory import PeakMemory
from bench.datasets import ImageSet, Splits, split_dataset
from bench.datasets.standardize import InputStats, standardize_splits
from bench.grid.config import CellConfig
from bench.grid.data_cache import cached_dataset
from bench.grid.record import (
    Checkpoint,
    DatasetInfo,
    Health,
    InputsInfo,
    Metrics,
    Projection,
    Record,
    Sampling,
    Timing,
    ValMetrics,
)
from bench.sampling.budget import LR_PARAM, Budget, method_budget
from bench.sampling.plan import BalancePlan
from bench.sampling.schemes import make_plan

StepCallback = Callable[[int, int], None]


def prepare_data(dataset: str, options: dict[str, Any], seed: int, split_seed: int | None = None) -> Splits:
    """The split of ``dataset`` for ``seed`` (its test images chosen by ``split_seed``; None: by
    ``seed``, the older protocol), as new tensors on every call: the loaded dataset is cached per
    process (bounded, keyed by its files' fingerprint: ``bench.grid.data_cache``), and nothing a
    cell does to its split can reach that cache."""
    return split_dataset(cached_dataset(dataset, options), seed=seed, split_seed=split_seed)


def prepare_inputs(cell: CellConfig) -> tuple[Splits, InputStats | None]:
    """The cell's split with its inputs standardized as ``cell.inputs`` says, for every method
    alike, by statistics of the training split only (None for ``raw``), and the cell's
    ``augment`` (when given) in place of the dataset's own."""
    splits = prepare_data(cell.dataset, dict(cell.dataset_options), cell.seed, cell.split_seed)
    if cell.augment is not None:
        splits = Splits(
            *(replace(part, augment=cell.augment) for part in (splits.train, splits.val, splits.test))
        )
    return standardize_splits(splits, cell.inputs)


def cell_plan(cell: CellConfig, train: ImageSet) -> BalancePlan:
    """The cell's balance plan over the training classes."""
    return make_plan(
        cell.scheme, train.class_counts(), train.classes, train.good_index, **dict(cell.scheme_options)
    )


def prepare_cell(cell: CellConfig) -> tuple[Splits, BalancePlan]:
    """The cell's split (train / val / test, inputs standardized) and its balance plan."""
    splits, _ = prepare_inputs(cell)
    return splits, cell_plan(cell, splits.train)


def create_cell_method(cell: CellConfig) -> tuple[Any, Budget]:
    """The cell's unfitted method and the budget it trains with (an ``lr`` in the cell's
    params is that method's learning rate; the rest of the budget is the grid's)."""
    from methods import create_method

    budget, params = method_budget(cell.budget, cell.params_dict)
    return create_method(cell.method, trunk=cell.trunk, **params), budget


def _finite(value: Any) -> Any:
    # JSON has no NaN: an undefined metric is recorded as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def now() -> str:
    """The current UTC time as a record stores it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _started(cell: CellConfig) -> Record:
    return Record(hash=cell.hash, config=cell, status="failed", error=None, started_at=now())


def new_record(cell: CellConfig) -> dict[str, Any]:
    """A cell's record before it runs, as JSON: keyed and configured, ``failed`` until it succeeds."""
    return _started(cell).to_dict()


def _checkpoint(selected: dict[str, Any] | None) -> Checkpoint | None:
    """The record's part of a method's ``checkpoint_`` (None: no checkpoint selection)."""
    if not selected:
        return None
    history = selected.get("history") or []
    return Checkpoint(
        selected_step=selected.get("selected_step"),
        val_accuracy=selected.get("val_accuracy"),
        step=tuple(int(step) for step, _ in history),
        accuracy=tuple(float(accuracy) for _, accuracy in history),
    )


def same_weights_record(cell: CellConfig, trained: Mapping[str, Any]) -> dict[str, Any]:
    """The record of ``cell``, not trained because its scheme gives the same per-class weights as
    the scheme of ``trained`` (the record, as JSON, of the cell equal to ``cell`` but for its
    scheme): ``trained``'s measurements under ``cell``'s hash and config, with
    ``same_weights_as`` naming the scheme that was trained. Equal weights draw equal batches, so
    training ``cell`` itself would measure the same.

    Raises:
        ValueError: ``trained`` is the record of a cell that differs from ``cell`` in more than
            its scheme.
    """
    source = Record.from_dict(trained)
    other = source.config
    if replace(other, scheme=cell.scheme, scheme_options=cell.scheme_options) != cell:
        raise ValueError(f"{other.label} is not {cell.label} under another scheme")
    plan = None if source.plan is None else {**source.plan, "scheme": cell.scheme}
    record = replace(
        source,
        hash=cell.hash,
        config=cell,
        plan=plan,
        same_weights_as=source.same_weights_as or other.scheme,
    )
    return record.to_dict()


def run_cell(cell: CellConfig, device: str = "cpu", on_step: StepCallback | None = None) -> dict[str, Any]:
    """Run one cell and return its record as JSON (``Record.to_dict``: ``status`` ``ok`` or
    ``failed``; never raises for a failure inside the cell, except KeyboardInterrupt).

    It changes no process-wide state: the process's thread count and deterministic kernels
    are its executor's (``bench.grid.executors.WorkerSettings``), and the method seeds its own
    random generators from ``cell.seed``."""
    from bench.evaluation.evaluate import evaluate
    from bench.evaluation.health import training_health
    from methods.base import RECORD_EVERY

    record = _started(cell)
    try:
        splits, input_stats = prepare_inputs(cell)
        plan = cell_plan(cell, splits.train)
        train = splits.train
        record = replace(
            record,
            dataset=DatasetInfo(
                name=train.name,
                classes=tuple(train.classes),
                good=train.classes[train.good_index] if train.good_index is not None else None,
                image_shape=tuple(train.image_shape),
                counts=splits.counts_by_code(),
                source=train.source,
                inputs=InputsInfo.from_json(input_stats.describe() if input_stats else {"mode": cell.inputs}),
                fingerprint=train.fingerprint or None,
                augment=tuple(train.augment) or None,
            ),
        )
        memory = PeakMemory(device).start()  # what fit and evaluate add; not the data
        record = replace(record, plan=plan.to_dict())
        method, budget = create_cell_method(cell)
        t0 = time.perf_counter()
        method.fit(
            train, splits.val, plan=plan, budget=budget, seed=cell.seed, device=device, progress=on_step
        )
        train_s = time.perf_counter() - t0
        result = evaluate(
            method,
            splits,
            headline_rule=cell.headline_rule,
            cost_escape=cell.cost_escape,
            cost_overkill=cell.cost_overkill,
            good_share=cell.good_share,
            escape_budgets=cell.escape_budgets,
        )
        if result["test_views"] > 1:
            record = replace(record, dataset=replace(record.dataset, test_views=result["test_views"]))
        sampling = dict(method.sampling_)
        # A label-free baseline trains nothing that could collapse: no health entry.
        health = (
            None
            if getattr(method, "label_free", False)
            else training_health(
                result["test_spread"],
                train.num_classes,
                list(method.loss_history_),
                method.collapse_loss(),
                RECORD_EVERY,
                budget.steps,
            )
        )
        projection = result.get("embedding_2d")
        record = replace(
            record,
            status="ok",
            params=method.get_params() | ({LR_PARAM: budget.lr} if LR_PARAM in cell.params_dict else {}),
            headline_rule=result["headline_rule"],
            metrics=Metrics.from_json(result["metrics"]),
            metrics_by_rule={r: Metrics.from_json(m) for r, m in result["metrics_by_rule"].items()},
            val_metrics_by_rule={
                r: ValMetrics.from_json(m) for r, m in result.get("val_metrics_by_rule", {}).items()
            },
            embedding_2d=None if projection is None else Projection.from_json(projection),
            sampling=Sampling.from_json(sampling),
            health=None if health is None else Health.from_json(health),
            checkpoint=_checkpoint(getattr(method, "checkpoint_", None)),
            timing=Timing(
                train_s=round(train_s, 4),
                train_images_per_s=round(sampling.get("images_seen", 0) / max(train_s, 1e-9), 1),
                embed_images_per_s=round(result["embed_images_per_s"], 1),
                eval_s=round(result["eval_s"], 4),
                fit_eval_peak_rss_mb=memory.peak_mb(),
                fit_eval_peak_cuda_mb=memory.cuda_peak_mb(),
            ),
        )
    except KeyboardInterrupt:
        raise
    except BenchError as exc:
        record = replace(record, error=str(exc))
    except Exception as exc:  # a failing cell is recorded; the grid goes on
        record = replace(
            record, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8)
        )
    record = replace(record, env=environment(device), finished_at=now())
    return _finite(record.to_dict())
