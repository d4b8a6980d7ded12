"""The records of a run as the report sees them: studies, method labels, and cells indexed by
(method label, scheme) -> {seed: record}."""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from bench.grid.store import latest_by_hash, read_records
from bench.report.stats import summarize

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
METHOD_ORDER = ("siamese", "mean-anchor-triplet", "mined-triplet", "classifier")
REFERENCE_METHOD = "mean-anchor-triplet"
REFERENCE_SCHEME = "good-x5"
BASELINE_SCHEME = "uniform"
_GOOD_K = re.compile(r"^good-x(\d+(?:\.\d+)?)$")
STUDY_KEYS = (
    "dataset",
    "dataset_options",
    "trunk",
    "budget",
    "headline_rule",
    "cost_escape",
    "cost_overkill",
    "good_share",
    "inputs",
)
#: What a study key reads for a key a record lacks: records made before ``inputs`` existed
#: were made on raw pixels, so they share a study with new ``raw`` records.
STUDY_DEFAULTS = {"inputs": "raw"}


# --------------------------------------------------------------------------- records


def load_records(run_dir: str | os.PathLike) -> list[dict]:
    """The records of ``run_dir/results.jsonl``, one per cell hash.

    Torn or foreign lines are skipped with a warning (``bench.grid.store.read_records``); when a
    hash occurs several times (a rerun), the last ``ok`` record wins, else the last record.
    """
    return list(latest_by_hash(read_records(Path(run_dir))).values())


def dig(d: dict | None, *keys, default=None):
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return default if d is None else d


def is_ok(rec: dict) -> bool:
    return rec.get("status") == "ok" and isinstance(rec.get("metrics"), dict)


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def study_key(rec: dict) -> str:
    cfg = rec["config"]
    return canonical({k: cfg.get(k, STUDY_DEFAULTS.get(k)) for k in STUDY_KEYS})


def study_inputs(records: Sequence[dict]) -> str | None:
    """The ``inputs`` a study's records name; None when none does (all made before it existed)."""
    return next((r["config"]["inputs"] for r in records if r["config"].get("inputs")), None)


def method_key(name: str) -> tuple:
    base = name.split(" ")[0]
    return (METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER), name)


def good_k(scheme: str) -> float | None:
    """K of a ``good-xK`` scheme (``uniform`` is K = 1), else None."""
    if scheme == BASELINE_SCHEME:
        return 1.0
    match = _GOOD_K.match(scheme)
    return float(match.group(1)) if match else None


def scheme_key(scheme: str) -> tuple:
    """Reading order of schemes: uniform, natural, sqrt, good-xK by K, the rest alphabetical."""
    fixed = {"uniform": 0, "natural": 1, "sqrt": 2}
    if scheme in fixed:
        return (fixed[scheme], 0.0, scheme)
    k = good_k(scheme)
    if k is not None:
        return (3, k, scheme)
    return (4, 0.0, scheme)


def method_labels(records: Sequence[dict]) -> dict[str, str]:
    """A display label per record hash: the method name, plus a parameter tag where one
    method ran with several hyperparameter sets in the same study."""
    variants: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        variants[rec["config"].get("method", "?")].add(canonical(rec["config"].get("params", {})))
    labels = {}
    for rec in records:
        method = rec["config"].get("method", "?")
        if len(variants[method]) <= 1:
            labels[rec["hash"]] = method
            continue
        params = rec["config"].get("params", {}) or {}
        others = [json.loads(v) for v in variants[method]]
        differing = sorted(k for k in params if any(o.get(k) != params.get(k) for o in others))
        labels[rec["hash"]] = f"{method} ({', '.join(f'{k}={params[k]}' for k in differing)})"
    return labels


class Cells:
    """The ok records of one study indexed by (method label, scheme) -> {seed: record}."""

    def __init__(self, records: Sequence[dict]):
        self.labels = method_labels(records)
        self.by_cell: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
        for rec in records:
            if is_ok(rec):
                cfg = rec["config"]
                self.by_cell[(self.labels[rec["hash"]], cfg.get("scheme", "?"))][cfg.get("seed", 0)] = rec
        self.methods = sorted({m for m, _ in self.by_cell}, key=method_key)
        self.schemes = sorted({s for _, s in self.by_cell}, key=scheme_key)

    def cells(self) -> list[tuple[str, str]]:
        return [(m, s) for m in self.methods for s in self.schemes if (m, s) in self.by_cell]

    def values(self, method: str, scheme: str, *path) -> dict[int, float | None]:
        return {seed: dig(rec, *path) for seed, rec in sorted(self.by_cell.get((method, scheme), {}).items())}

    def summary(self, method: str, scheme: str, *path, scale: float = 1.0) -> dict:
        """Mean and plain Student-t interval over seeds of the value at ``path`` times ``scale``."""
        vals = [None if v is None else float(v) * scale for v in self.values(method, scheme, *path).values()]
        return summarize(vals)

    def rate(self, method: str, scheme: str, *path) -> dict:
        """Mean and logit-scale interval over seeds of the rate at ``path``, in % (stays in 0–100)."""
        vals = [None if v is None else float(v) * 100 for v in self.values(method, scheme, *path).values()]
        return summarize(vals, rate_scale=100.0)
