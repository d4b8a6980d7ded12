"""What every MLflow export shares: the client, experiments found or made by name, and runs
synchronized by a key, so that exporting again creates no duplicate.

Each run the bench creates carries two tags: ``bench.key`` (a cell's hash, or a trial's study
and number) and ``bench.digest`` (a digest of everything logged to it). Exporting again keeps a
run whose digest is unchanged, and replaces one whose content changed (a failed cell rerun ``ok``,
a trial that finished since): MLflow parameters cannot change, so the old run is deleted (MLflow's
soft delete: ``mlflow gc`` purges it) and a new one made. Only ``mlflow`` itself is imported
here, when a client is made; without it the export says how to install it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from bench.core.canonical import canonical_json
from bench.core.errors import BenchError

#: Where ``--mlflow`` without a URI exports: a SQLite file in the working directory, the store
#: ``mlflow ui`` opens by default (run it in the same directory).
DEFAULT_URI = "sqlite:///mlflow.db"
#: The folder beside a SQLite store that holds its runs' artifacts (``mlflow ui``'s default).
ARTIFACTS_DIR = "mlartifacts"
KEY_TAG = "bench.key"
DIGEST_TAG = "bench.digest"
KIND_TAG = "bench.kind"
PARENT_TAG = "mlflow.parentRunId"
INSTALL_HINT = "MLflow is not installed: pip install -e '.[mlflow]' (or pip install mlflow)"
#: MLflow's limits on one value and one ``log_batch`` call.
MAX_VALUE = 6000
MAX_PARAMS_OR_TAGS = 100
MAX_ENTITIES = 1000


def mlflow_client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri``, with MLflow's and its migrations' chatter quietened.

    Raises:
        BenchError: MLflow is not installed, or the store cannot be opened.
    """
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise BenchError(INSTALL_HINT) from None
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # opens (and for SQLite creates) the store now
    except Exception as exc:  # MLflow raises its own exception types, and SQLAlchemy's
        raise BenchError(f"cannot open the MLflow store {uri}: {_first_line(exc)}") from None
    return client


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def artifact_root(uri: str) -> Path | None:
    """The artifact folder of a local SQLite store (``mlartifacts`` beside the file); None for
    any other store, which places artifacts itself."""
    parsed = urlparse(uri)  # sqlite:///relative.db, sqlite:////absolute.db
    path = unquote(parsed.path[1:])
    if parsed.scheme != "sqlite" or path in ("", ":memory:"):
        return None
    return Path(path).resolve().parent / ARTIFACTS_DIR


def experiment_id(client: Any, uri: str, name: str, tags: Mapping[str, str]) -> str:
    """The id of experiment ``name``: made (with ``tags``) when missing, restored when deleted."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    root = artifact_root(uri)
    location = None if root is None else (root / _slug(name)).as_uri()
    return client.create_experiment(name, artifact_location=location, tags=dict(tags))


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "experiment"


def existing_runs(client: Any, experiment: str) -> dict[str, Any]:
    """The experiment's active runs that the bench made, by their ``bench.key``."""
    out: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_runs([experiment], max_results=1000, page_token=token)
        for run in page:
            key = run.data.tags.get(KEY_TAG)
            if key is not None:
                out[key] = run
        token = page.token
        if not token:
            return out


def metric_name(name: str) -> str:
    """``name`` with the characters MLflow refuses in a key (it takes letters, digits, ``_-./ :``)
    as ``_``."""
    return re.sub(r"[^/\w.\- :]", "_", name)


def param_text(value: Any) -> str:
    """A parameter's value as MLflow text: strings as they are, anything else as JSON."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_VALUE]


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite number MLflow can hold as a metric (booleans count as 0 or 1)."""
    return isinstance(value, int | float) and math.isfinite(float(value))


def millis(stamp: str | datetime | None) -> int | None:
    """An ISO 8601 time (or a datetime) in milliseconds since the epoch; None for None."""
    if stamp is None:
        return None
    moment = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
    return int(moment.timestamp() * 1000)


@dataclass
class RunContent:
    """What one exported run holds.

    Attributes:
        key: what identifies the run across exports (``bench.key``).
        name: the run's name in the MLflow UI.
        params: parameter name -> value (values become text).
        metrics: metric name -> number (logged at step 0).
        curves: metric name -> ``[(step, value), ...]``, logged as step metrics.
        tags: tag name -> text.
        start: start time (ms); end: end time (ms); status: ``FINISHED``, ``FAILED``,
            ``KILLED`` or ``RUNNING`` (left open).
    """

    key: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    start: int | None = None
    end: int | None = None
    status: str = "FINISHED"

    def digest(self) -> str:
        """A digest of everything the run logs."""
        content = {
            "name": self.name,
            "params": {metric_name(k): param_text(v) for k, v in self.params.items()},
            "metrics": {metric_name(k): float(v) for k, v in self.metrics.items() if is_number(v)},
            "curves": {metric_name(k): [[int(s), float(v)] for s, v in c] for k, c in self.curves.items()},
            "tags": self.tags,
            "times": [self.start, self.end, self.status],
        }
        return hashlib.sha256(canonical_json(content).encode()).hexdigest()[:16]


def sync_run(
    client: Any, experiment: str, content: RunContent, existing: Mapping[str, Any], parent: str | None = None
) -> tuple[str, str]:
    """Make the experiment hold one run of ``content``: keep the existing run of its key when its
    digest is the same, else replace it (or make the first one).

    Returns:
        ``(run id, what happened)``: ``unchanged``, ``replaced`` or ``new``.
    """
    digest = content.digest()
    old = existing.get(content.key)
    if old is not None and old.data.tags.get(DIGEST_TAG) == digest:
        if parent is not None and old.data.tags.get(PARENT_TAG) != parent:  # the parent was replaced
            client.set_tag(old.info.run_id, PARENT_TAG, parent)
        return old.info.run_id, "unchanged"
    if old is not None:
        client.delete_run(old.info.run_id)
    tags = {k: v[:MAX_VALUE] for k, v in content.tags.items()} | {KEY_TAG: content.key, DIGEST_TAG: digest}
    if parent is not None:
        tags[PARENT_TAG] = parent
    run = client.create_run(experiment, start_time=content.start, tags=tags, run_name=content.name)
    run_id = run.info.run_id
    _log(client, run_id, content)
    if content.status != "RUNNING":
        client.set_terminated(run_id, status=content.status, end_time=content.end)
    return run_id, "new" if old is None else "replaced"


def _log(client: Any, run_id: str, content: RunContent) -> None:
    from mlflow.entities import Metric, Param

    stamp = content.end or content.start or 0
    params = [Param(metric_name(k), param_text(v)) for k, v in content.params.items()]
    metrics = [Metric(metric_name(k), float(v), stamp, 0) for k, v in content.metrics.items() if is_number(v)]
    for name, curve in content.curves.items():
        metrics += [Metric(metric_name(name), float(v), stamp, int(s)) for s, v in curve if is_number(v)]
    # As few calls as MLflow's limits allow: each a transaction of the store.
    while params or metrics:
        batch_params, params = params[:MAX_PARAMS_OR_TAGS], params[MAX_PARAMS_OR_TAGS:]
        room = MAX_ENTITIES - len(batch_params)
        batch_metrics, metrics = metrics[:room], metrics[room:]
        client.log_batch(run_id, metrics=batch_metrics, params=batch_params)


def log_files(client: Any, run_id: str, files: Sequence[tuple[Path, str | None]]) -> None:
    """Log each ``(file, folder)`` as an artifact of the run (again: the copy is replaced)."""
    for path, folder in files:
        if path.is_file():
            client.log_artifact(run_id, str(path), folder)


@dataclass
class ExportCount:
    """What one export did to one experiment."""

    experiment: str
    runs: int = 0
    new: int = 0
    replaced: int = 0
    unchanged: int = 0

    def add(self, what: str) -> None:
        self.runs += 1
        setattr(self, what, getattr(self, what) + 1)

    def line(self) -> str:
        return (
            f"{self.experiment}: {self.runs} run(s): {self.new} new, {self.replaced} replaced,"
            f" {self.unchanged} unchanged"
        )
