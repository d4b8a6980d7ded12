"""The records of a run as the report sees them: studies, labels, and cells indexed by
(method label, scheme label) -> {seed: record}."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.core.canonical import canonical_json as canonical
from bench.evaluation.rules import SCORE_RULE
from bench.grid.record import HEADLINE_METRICS, INPUTS_FIELD, Record
from bench.grid.store import latest_by_hash, parts_behind
from bench.grid.store import load_records as read_run
from bench.report.same_weights import members, merged_labels
from bench.report.stats import summarize
from bench.sampling.names import BASELINE_SCHEME, good_x_weight

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
METHOD_ORDER = ("siamese", "mean-anchor-triplet", "mined-triplet", "classifier")
REFERENCE_METHOD = "mean-anchor-triplet"
REFERENCE_SCHEME = "good-x5"
#: The config fields that place a record inside a study: its method (with hyperparameters),
#: scheme (with options) and seed. Every other field of a cell's config separates studies, so
#: each field that enters a cell's hash either separates cells in the report or labels them.
CELL_FIELDS = ("method", "params", "scheme", "scheme_options", "seed")

#: What the report reads from a record: a number (or None) per record.
Value = Callable[[Record], Any]


# --------------------------------------------------------------------------- records


def load_records(run_dir: str | os.PathLike) -> list[Record]:
    """The records of ``run_dir/results.jsonl``, one per cell hash.

    Torn or foreign lines are skipped with a warning (``bench.grid.store.load_records``); when a
    hash occurs several times (a rerun), the last ``ok`` record wins, else the last record.
    """
    return list(latest_by_hash(read_run(Path(run_dir))).values())


def as_records(records: Iterable[Record | Mapping[str, Any]]) -> list[Record]:
    """Records, with their JSON objects read by the record reader (``Record.from_dict``)."""
    return [r if isinstance(r, Record) else Record.from_dict(r) for r in records]


def counted(value: Value, *path: str) -> Value:
    """``value``, marked as the rate at ``path`` of a record's JSON (e.g. ``"metrics",
    "escape_rate"``), so that ``Cells.rate`` can read the counts of parts behind it
    (``bench.grid.store.parts_behind``)."""
    value.path = path  # type: ignore[attr-defined]
    return value


def headline(name: str) -> Value:
    """A record's headline rate ``name`` (``accuracy``, ``escape``, ``overkill``: the record's
    ``HEADLINE_METRICS``, the table the seed-target rule reads too)."""
    return counted(lambda rec: rec.headline(name), "metrics", HEADLINE_METRICS[name])


def options(rec: Record, options_field: str) -> dict:
    """A table of the record's cell (``params``, ``scheme_options``, ``dataset_options``) as a dict."""
    return dict(getattr(rec.config, options_field))


def study_config(rec: Record) -> dict:
    """What a record shares with every other record of its study: its config but the cell fields."""
    return {k: v for k, v in rec.config.to_dict().items() if k not in CELL_FIELDS}


def study_key(rec: Record) -> str:
    return canonical(study_config(rec))


def study_inputs(records: Sequence[Record]) -> str | None:
    """The ``inputs`` a study's records name; None when none does (all made before ``--inputs``:
    their ``raw`` is the reader's, ``Record.inferred``)."""
    return next((r.config.inputs for r in records if r.recorded(INPUTS_FIELD)), None)


def method_key(name: str) -> tuple:
    base = name.split(" ")[0]
    return (METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER), name)


def good_k(scheme: str) -> float | None:
    """K of a ``good-xK`` scheme (``uniform`` is K = 1), else None; for a group of schemes with the
    same weights (``natural = good-x5``), the K of its first such member."""
    for name in members(scheme):
        if name == BASELINE_SCHEME:
            return 1.0
        if good_x_weight(name) is not None:
            return good_x_weight(name)
    return None


def scheme_key(scheme: str) -> tuple:
    """Reading order of schemes: uniform, natural, sqrt, good-xK by K, the rest alphabetical;
    the variants of one scheme (``effective-number (beta=0.99)``) by their label."""
    base = scheme.split(" ")[0]
    fixed = {"uniform": 0, "natural": 1, "sqrt": 2}
    if base in fixed:
        return (fixed[base], 0.0, scheme)
    k = good_k(base)
    if k is not None:
        return (3, k, scheme)
    return (4, 0.0, scheme)


def flat(value: dict, prefix: str = "") -> dict[str, object]:
    """Nested tables as one level of dotted keys: ``{"budget": {"lr": 0.1}}`` -> ``{"budget.lr": 0.1}``."""
    out: dict[str, object] = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            out.update(flat(item, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = item
    return out


def settings_text(value: dict) -> str:
    """``k=v, k2=v2`` of a (flattened) table, keys sorted."""
    return ", ".join(f"{k}={v}" for k, v in sorted(flat(value).items()))


def variant_tags(variants: Sequence[dict]) -> dict[str, str]:
    """A short tag per distinct table (keyed by its canonical JSON): the ``k=v`` of the keys
    whose values differ between the tables, ``defaults`` for a table that sets none of them.

    Distinct tables always get distinct tags (values JSON-quoted where plain text would tie).
    """
    flats = {canonical(v): flat(v) for v in variants}
    missing = object()
    keys = sorted({k for f in flats.values() for k in f})
    differing = [k for k in keys if len({canonical(f.get(k, missing)) for f in flats.values()}) > 1]

    def tags(text) -> dict[str, str]:
        return {
            c: ", ".join(f"{k}={text(f[k])}" for k in differing if k in f) or "defaults"
            for c, f in flats.items()
        }

    plain = tags(str)
    return plain if len(set(plain.values())) == len(plain) else tags(canonical)


def labels_by_hash(records: Sequence[Record], name_field: str, options_field: str) -> dict[str, str]:
    """A display label per record hash: the name (method or scheme), plus a tag of its
    ``options_field`` where one name ran with several settings in the same study."""
    variants: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        variants[getattr(rec.config, name_field)].append(options(rec, options_field))
    tags = {name: variant_tags(v) for name, v in variants.items() if len({canonical(x) for x in v}) > 1}
    labels = {}
    for rec in records:
        name = getattr(rec.config, name_field)
        settings = canonical(options(rec, options_field))
        labels[rec.hash] = f"{name} ({tags[name][settings]})" if name in tags else name
    return labels


def method_labels(records: Sequence[Record]) -> dict[str, str]:
    """A display label per record hash: the method, tagged with the hyperparameters that differ
    where one method ran with several sets in the same study."""
    return labels_by_hash(records, "method", "params")


def shared_settings(records: Sequence[Record], name_field: str, options_field: str) -> dict[str, dict]:
    """Non-empty settings of each name that ran with one setting only (shown in the set-up; the
    names with several settings carry them in their labels)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        seen[getattr(rec.config, name_field)].add(canonical(options(rec, options_field)))
    return {
        name: json.loads(next(iter(v))) for name, v in sorted(seen.items()) if len(v) == 1 and v != {"{}"}
    }


def label_free_records(records: Iterable[Record]) -> bool:
    """Whether ``records`` (some, all) are a label-free baseline's: scored, with no class rule."""
    records = list(records)
    return bool(records) and all(rec.headline_rule == SCORE_RULE for rec in records)


class Cells:
    """The ok records of one study indexed by (method label, scheme label) -> {seed: record}.

    Labels carry every cell field that varies in the study, so two records share a slot only
    when their configs are equal (the later hash of such a pair is kept in ``duplicates``) or
    their schemes gave the same weights (one label for the group, ``natural = good-x5``, and one
    record per seed: the group is shown and counted once).
    """

    def __init__(self, records: Sequence[Record]):
        self.labels = method_labels(records)
        own = labels_by_hash(records, "scheme", "scheme_options")
        #: Each scheme label -> the label it is shown under (``natural = good-x5`` for schemes that
        #: gave the same weights: ``bench.report.same_weights``).
        self.shown = merged_labels(records, own, self.labels, scheme_key)
        self.scheme_labels = {h: self.shown[label] for h, label in own.items()}
        self.by_cell: dict[tuple[str, str], dict[int, Record]] = defaultdict(dict)
        self.duplicates: list[str] = []
        # A group's seed keeps the record of the scheme that was trained (not ``same_weights_as``
        # another), else of its first scheme; the others measured the same and are not duplicates.
        for rec in sorted(
            records,
            key=lambda r: (
                r.same_weights_as is not None,
                members(self.scheme_labels[r.hash]).index(own[r.hash]),
                r.hash,
            ),
        ):
            if rec.ok:
                seeds = self.by_cell[(self.labels[rec.hash], self.scheme_labels[rec.hash])]
                seed = rec.config.seed
                if seed not in seeds:
                    seeds[seed] = rec
                elif own[seeds[seed].hash] == own[rec.hash]:
                    self.duplicates.append(rec.hash)
        self.unsampled = self._one_cell_per_baseline()
        self.methods = sorted({m for m, _ in self.by_cell}, key=method_key)
        self.schemes = sorted({s for _, s in self.by_cell}, key=scheme_key)

    def _one_cell_per_baseline(self) -> dict[str, str]:
        """Keep one cell of each label-free baseline: it draws nothing, so its cells under the
        other schemes scored the same images the same way, and shown (or tested) again they
        would only repeat rows and swell the families of paired tests. Returns each such method
        -> the scheme its cell is kept under (the first in scheme order)."""
        kept: dict[str, str] = {}
        for m in sorted({m for m, _ in self.by_cell}):
            mine = sorted((s for mm, s in self.by_cell if mm == m), key=scheme_key)
            recs = [rec for s in mine for rec in self.by_cell[(m, s)].values()]
            if len(mine) > 1 and label_free_records(recs):
                kept[m] = mine[0]
                for s in mine[1:]:
                    del self.by_cell[(m, s)]
        return kept

    def shown_as(self, scheme: str) -> str:
        """The label scheme (label) ``scheme`` is shown under: ``natural = good-x5`` for
        ``good-x5`` where the two gave the same weights, else ``scheme`` itself."""
        return self.shown.get(scheme, scheme)

    def cells(self) -> list[tuple[str, str]]:
        return [(m, s) for m in self.methods for s in self.schemes if (m, s) in self.by_cell]

    def values(self, method: str, scheme: str, value: Value) -> dict[int, float | None]:
        """``value`` of each seed's record, by seed."""
        return {seed: value(rec) for seed, rec in sorted(self.by_cell.get((method, scheme), {}).items())}

    def summary(self, method: str, scheme: str, value: Value, scale: float = 1.0) -> dict:
        """Mean and plain Student-t interval over seeds of ``value`` times ``scale``."""
        vals = [None if v is None else float(v) * scale for v in self.values(method, scheme, value).values()]
        return summarize(vals)

    def rate(self, method: str, scheme: str, value: Value) -> dict:
        """Mean and logit-scale interval over seeds of the rate ``value``, in % (stays in 0–100);
        where the seeds show no spread, the interval of the counts of parts behind the rate (for a
        ``value`` made by ``counted``, which names the metric the counts are read for)."""
        vals = [None if v is None else float(v) * 100 for v in self.values(method, scheme, value).values()]
        path = getattr(value, "path", None)
        parts = (
            [parts_behind(rec, path) for rec in self.by_cell.get((method, scheme), {}).values()]
            if path
            else []
        )
        known = [p for p in parts if p is not None]
        return summarize(vals, rate_scale=100.0, n_parts=sum(known) / len(known) if known else None)
