"""The record of one grid cell: what the runner writes, the store keeps and the report reads.

A record is a ``Record``, a frozen dataclass of typed parts (``bench.grid.record_parts``), and on
disk one JSON object per line of ``results.jsonl``, with a ``schema_version``. ``Record.to_dict``
writes the current version; ``Record.from_dict`` is the one reader: it converts a record of every
older version to the current one (``_convert_from_v1``, ... chained), so no other code knows what
older records looked like.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bench.datasets.standardize import LEGACY_INPUTS
from bench.grid.adaptive import SeedTarget
from bench.grid.config import CellConfig
from bench.grid.record_parts import (
    HEADLINE_METRICS,
    Checkpoint,
    Confusion,
    Costs,
    DatasetInfo,
    Health,
    InputsInfo,
    LossCurve,
    Metrics,
    Part,
    Projection,
    RecordError,
    Sampling,
    Timing,
    ValMetrics,
    as_dict,
    map_of,
    required,
    slot,
)

__all__ = [
    "HEADLINE_METRICS",
    "INPUTS_FIELD",
    "PEAK_RSS_FIELD",
    "SCHEMA_VERSION",
    "SPLIT_SEED_FIELD",
    "CellConfig",
    "Checkpoint",
    "Confusion",
    "Costs",
    "DatasetInfo",
    "Health",
    "InputsInfo",
    "LossCurve",
    "Metrics",
    "Projection",
    "Record",
    "RecordError",
    "Sampling",
    "SeedTarget",
    "Timing",
    "ValMetrics",
]

#: The version ``Record.to_dict`` writes. 1: every record before the typed record; its shape grew
#: without a bump (``_convert_from_v1`` says how). 2: written from a ``Record``: the keys of the last
#: version-1 records, ``config.inputs`` and an ok cell's ``timing.fit_eval_peak_rss_mb`` always there.
#: 3: ``config.split_seed`` always there (null: the test split varied with the seed, the older protocol).
SCHEMA_VERSION = 3

#: The fields a reader may fill in for a record whose version did not record them
#: (``Record.inferred``).
INPUTS_FIELD = "config.inputs"
SPLIT_SEED_FIELD = "config.split_seed"
PEAK_RSS_FIELD = "timing.fit_eval_peak_rss_mb"


def _cell_config(data: Any) -> CellConfig:
    try:
        return CellConfig.from_dict(as_dict(data))
    except Exception as exc:  # unknown keys, a budget out of range: not a cell this bench can name
        raise RecordError(f"not a cell config ({exc})") from None


def _seed_target(data: Any) -> SeedTarget:
    try:
        return SeedTarget(**as_dict(data))
    except Exception as exc:
        raise RecordError(f"not a seed target ({exc})") from None


@dataclass(frozen=True, kw_only=True)
class Record(Part):
    """One grid cell's record: its identity and config, what it measured, where and when.

    A failed cell's record has ``status`` ``failed``, an ``error`` and no measurements (or only
    those made before the failure: ``dataset``, ``plan``). Keys a record holds that this type
    does not declare are kept in ``extra`` and written back.

    Attributes:
        hash: the cell's hash (``CellConfig.hash``), what ``--resume`` and ``bench rerun`` key on.
        config: the cell.
        status: ``ok`` or ``failed``.
        error: why the cell failed; None when it did not.
        started_at: when the cell started (UTC, ISO 8601).
        finished_at: when it finished.
        dataset: the data as loaded and split.
        plan: the balance plan (``BalancePlan.to_dict``).
        params: the method's parameters as it ran (``get_params``, with its own ``lr``).
        headline_rule: the rule of ``metrics``.
        metrics: the headline rule's test metrics.
        metrics_by_rule: every rule's test metrics.
        val_metrics_by_rule: every rule's few headline numbers on the validation split.
        embedding_2d: a 2-D projection of test embeddings.
        sampling: what the method drew while it trained.
        health: training health.
        checkpoint: checkpoint selection's validation curve (``budget.eval_every > 0``; absent
            otherwise and in records made before it was recorded).
        timing: wall times, throughputs and peak memory.
        env: the environment (``bench.core.environment``): versions, device, machine.
        traceback: the failure's traceback, for an unexpected exception.
        params_source: where the method's parameters came from (``bench run --params-from``).
        seed_target: the seed target the cell ran under (``bench run --target-ci``).
        seed_round: the round of the seed-target rule that added the cell.
        same_weights_as: for a cell not trained itself because an earlier scheme of its grid
            gives the same per-class weights on its data (``natural`` and ``good-x5`` on a 5:1
            set): that scheme, whose cell (same method, seed and settings) was trained and
            measured; everything measured is that cell's. None (absent) for a trained cell and
            in records made before cells were shared.
        inferred: dotted names of the fields that the record's version did not record and the
            reader filled in (``config.inputs``: a record made before ``--inputs`` reads ``raw``;
            ``config.split_seed``: a record made before split seeds reads None, a test split per
            seed; ``timing.fit_eval_peak_rss_mb``: a record made before per-cell memory reads
            None). Not written.
    """

    hash: str = required()
    config: CellConfig = required(_cell_config)
    status: str = required()
    error: str | None = slot()
    started_at: str | None = slot(optional=True)
    dataset: DatasetInfo | None = slot(DatasetInfo.from_json, optional=True)
    plan: Mapping[str, Any] | None = slot(as_dict, optional=True)
    params: Mapping[str, Any] | None = slot(as_dict, optional=True)
    headline_rule: str | None = slot(optional=True)
    metrics: Metrics | None = slot(Metrics.from_json, optional=True)
    metrics_by_rule: Mapping[str, Metrics] | None = slot(map_of(Metrics.from_json), optional=True)
    val_metrics_by_rule: Mapping[str, ValMetrics] | None = slot(map_of(ValMetrics.from_json), optional=True)
    embedding_2d: Projection | None = slot(Projection.from_json, optional=True)
    sampling: Sampling | None = slot(Sampling.from_json, optional=True)
    health: Health | None = slot(Health.from_json, optional=True)
    checkpoint: Checkpoint | None = slot(Checkpoint.from_json, optional=True)
    timing: Timing | None = slot(Timing.from_json, optional=True)
    traceback: str | None = slot(optional=True)
    env: Mapping[str, Any] | None = slot(as_dict, optional=True)
    finished_at: str | None = slot(optional=True)
    params_source: str | None = slot(optional=True)
    seed_target: SeedTarget | None = slot(_seed_target, optional=True)
    seed_round: int | None = slot(optional=True)
    same_weights_as: str | None = slot(optional=True)
    inferred: frozenset[str] = field(default=frozenset(), repr=False, metadata={"json": False})

    def __post_init__(self) -> None:
        for name in ("hash", "status"):
            if not isinstance(getattr(self, name), str):
                raise RecordError(f"{name} must be a string (got {getattr(self, name)!r})")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        """Read a record of any schema version as the current ``Record``: the one reader.

        A record without ``schema_version`` is read as version 1. Each version's record is
        converted to the next (``_convert_from_v1``, ...) and then parsed.

        Args:
            data: one JSON object of ``results.jsonl``, or a dict the runner returned.

        Raises:
            RecordError: ``data`` is not a bench record (no ``hash``, ``status`` or cell
                ``config``; a field of the wrong shape), or it was written by a newer bench.
        """
        if not isinstance(data, Mapping):
            raise RecordError(f"a record is a JSON object, not {type(data).__name__}")
        version = data.get("schema_version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise RecordError(f"schema_version must be a whole number >= 1 (got {version!r})")
        if version > SCHEMA_VERSION:
            raise RecordError(
                f"written by a newer bench (schema_version {version}; this one reads up to {SCHEMA_VERSION})"
            )
        data = {k: v for k, v in data.items() if k != "schema_version"}
        inferred: set[str] = set()
        for convert in _CONVERSIONS[version - 1 :]:
            data = convert(data, inferred)
        record = cls.from_json(data)
        return replace(record, inferred=frozenset(inferred)) if inferred else record

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON object of the current ``SCHEMA_VERSION`` (what ``results.jsonl`` holds)."""
        return {"schema_version": SCHEMA_VERSION, **self.to_json()}

    @property
    def ok(self) -> bool:
        """Whether the cell finished and measured its test metrics."""
        return self.status == "ok" and self.metrics is not None

    def headline(self, name: str) -> float | None:
        """The headline rate ``name`` of the test split (a key of ``HEADLINE_METRICS``: accuracy,
        escape, overkill), in [0, 1]; None for a cell without metrics or an undefined rate."""
        return None if self.metrics is None else self.metrics.headline(name)

    def recorded(self, name: str) -> bool:
        """Whether the record itself holds the field ``name`` (``INPUTS_FIELD``, ``PEAK_RSS_FIELD``),
        rather than the reader's value for a version that did not record it."""
        return name not in self.inferred


def _convert_from_v1(data: dict[str, Any], inferred: set[str]) -> dict[str, Any]:
    """Version 1 -> 2. Version 1 grew without a version bump; its earlier records lack:

    - ``config.inputs`` (records made before ``--inputs``): they were made on raw pixels, so it
      reads ``raw``, and the cell hash stays theirs (``CellConfig.hash`` leaves ``raw`` out);
    - ``timing.fit_eval_peak_rss_mb`` (before per-cell memory): not measured, None. Their
      ``timing.peak_rss_mb`` was the worker process's lifetime peak, the same for every cell of
      a worker; it stays an extra key of ``Timing``, never shown;
    - ``dataset.inputs``, ``health``, ``params``, the machine fingerprint in ``env``,
      ``params_source``, and a failed cell's ``started_at`` and ``finished_at``: read as absent.
    """
    config = data.get("config")
    if isinstance(config, Mapping) and "inputs" not in config:
        data = {**data, "config": {**config, "inputs": LEGACY_INPUTS}}
        inferred.add(INPUTS_FIELD)
    timing = data.get("timing")
    if isinstance(timing, Mapping) and "fit_eval_peak_rss_mb" not in timing:
        inferred.add(PEAK_RSS_FIELD)
    return data


def _convert_from_v2(data: dict[str, Any], inferred: set[str]) -> dict[str, Any]:
    """Version 2 -> 3. Records of versions 1 and 2 lack ``config.split_seed``: each of their seeds
    drew its own test split (the older protocol), so it reads None (``split_dataset`` then lets
    the seed choose the test images), and the cell hash stays theirs (``CellConfig.hash`` leaves
    None out)."""
    config = data.get("config")
    if isinstance(config, Mapping) and "split_seed" not in config:
        data = {**data, "config": {**config, "split_seed": None}}
        inferred.add(SPLIT_SEED_FIELD)
    return data


#: ``_CONVERSIONS[v - 1]`` converts a version ``v`` record to version ``v + 1``.
_CONVERSIONS: tuple[Callable[[dict[str, Any], set[str]], dict[str, Any]], ...] = (
    _convert_from_v1,
    _convert_from_v2,
)
