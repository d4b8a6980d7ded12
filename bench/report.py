"""Build RUN_DIR/report.md and RUN_DIR/plots/*.png from the records in RUN_DIR/results.jsonl.

The report is a pure function of the records: rebuilding it gives byte-identical markdown (no
clock reads, every list sorted, fixed number formats), so it can be regenerated after any
partial run and diffed between runs. Cells are grouped into *studies* (same dataset, trunk,
budget, headline rule and costs); within a study, methods and schemes are compared over seeds.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench import plots
from bench.atomic import write_text_atomic
from bench.stats import paired_comparison, summarize
from bench.store import latest_by_hash, read_records

logger = logging.getLogger(__name__)

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
METHOD_ORDER = ("siamese", "mean-anchor-triplet", "mined-triplet", "classifier")
REFERENCE_METHOD = "mean-anchor-triplet"
REFERENCE_SCHEME = "good-x5"
BASELINE_SCHEME = "uniform"
ALPHA = 0.05
_GOOD_K = re.compile(r"^good-x(\d+(?:\.\d+)?)$")
_STUDY_KEYS = (
    "dataset",
    "dataset_options",
    "trunk",
    "budget",
    "headline_rule",
    "cost_escape",
    "cost_overkill",
    "good_share",
)


# --------------------------------------------------------------------------- records


def load_records(run_dir: str | os.PathLike) -> list[dict]:
    """The records of ``run_dir/results.jsonl``, one per cell hash.

    Torn or foreign lines are skipped with a warning (``bench.store.read_records``); when a
    hash occurs several times (a rerun), the last ``ok`` record wins, else the last record.
    """
    return list(latest_by_hash(read_records(Path(run_dir))).values())


def _get(d: dict | None, *keys, default=None):
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return default if d is None else d


def _is_ok(rec: dict) -> bool:
    return rec.get("status") == "ok" and isinstance(rec.get("metrics"), dict)


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _study_key(rec: dict) -> str:
    cfg = rec["config"]
    return _canonical({k: cfg.get(k) for k in _STUDY_KEYS})


def _method_key(name: str) -> tuple:
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


def _method_labels(records: Sequence[dict]) -> dict[str, str]:
    """A display label per record hash: the method name, plus a parameter tag where one
    method ran with several hyperparameter sets in the same study."""
    variants: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        variants[rec["config"].get("method", "?")].add(_canonical(rec["config"].get("params", {})))
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


class _Cells:
    """The ok records of one study indexed by (method label, scheme) -> {seed: record}."""

    def __init__(self, records: Sequence[dict]):
        self.labels = _method_labels(records)
        self.by_cell: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
        for rec in records:
            if _is_ok(rec):
                cfg = rec["config"]
                self.by_cell[(self.labels[rec["hash"]], cfg.get("scheme", "?"))][cfg.get("seed", 0)] = rec
        self.methods = sorted({m for m, _ in self.by_cell}, key=_method_key)
        self.schemes = sorted({s for _, s in self.by_cell}, key=scheme_key)

    def cells(self) -> list[tuple[str, str]]:
        return [(m, s) for m in self.methods for s in self.schemes if (m, s) in self.by_cell]

    def values(self, method: str, scheme: str, *path) -> dict[int, float | None]:
        return {
            seed: _get(rec, *path) for seed, rec in sorted(self.by_cell.get((method, scheme), {}).items())
        }

    def summary(self, method: str, scheme: str, *path, scale: float = 1.0) -> dict:
        vals = [None if v is None else float(v) * scale for v in self.values(method, scheme, *path).values()]
        return summarize(vals)


# --------------------------------------------------------------------------- formatting


def _num(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _mean_ci(s: dict, digits: int = 1) -> str:
    """``mean ± half-width`` of a 95% interval (just the mean when n = 1)."""
    if s.get("mean") is None:
        return "–"
    if s.get("ci_low") is None:
        return _num(s["mean"], digits)
    return f"{_num(s['mean'], digits)} ± {_num((s['ci_high'] - s['ci_low']) / 2, digits)}"


def _interval(s: dict, digits: int = 1) -> str:
    if s.get("ci_low") is None:
        return "n/a"
    return f"{_num(s['ci_low'], digits)} to {_num(s['ci_high'], digits)}"


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _table(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "_(none)_\n"
    frame = pd.DataFrame(rows, columns=list(columns) if columns else None).fillna("–")
    # Every cell is preformatted text: stop tabulate from re-parsing "91.2 ± 1.3" or codes.
    return frame.astype(str).to_markdown(index=False, disable_numparse=True) + "\n"


def _cell_text(text) -> str:
    """One table-safe line: pipes escaped, newlines folded, long messages cut."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= 300 else text[:297] + "..."


# --------------------------------------------------------------------------- sections


def _setup_section(records: Sequence[dict], cells: _Cells) -> list[str]:
    cfg = records[0]["config"]
    ok = [r for r in records if _is_ok(r)]
    described = sorted(ok or records, key=lambda r: (r["config"].get("seed", 0), r["hash"]))[0]
    ds = described.get("dataset") or {}
    budget = cfg.get("budget") or {}
    seeds = sorted({r["config"].get("seed", 0) for r in records})
    good = ds.get("good")
    share = cfg.get("good_share")
    lines = [
        f"- **Dataset:** `{ds.get('name', cfg.get('dataset'))}`"
        + (f" ({_cell_text(ds['source'])})" if ds.get("source") else "")
        + f"; {len(ds.get('classes', []))} classes, good class `{good}`"
        + (f", images {ds['image_shape'][0]} x {ds['image_shape'][1]}" if ds.get("image_shape") else ""),
        f"- **Trunk:** `{cfg.get('trunk')}`; **budget:** "
        + ", ".join(f"{k} {budget[k]}" for k in sorted(budget)),
        f"- **Seeds:** {', '.join(str(s) for s in seeds)} ({len(seeds)})",
        f"- **Headline rule:** `{cfg.get('headline_rule', 'knn5')}`; **costs:** escape {cfg.get('cost_escape')},"
        f" overkill {cfg.get('cost_overkill')}; **production good share:** "
        + ("the test mix" if share is None else f"{share}"),
        f"- **Cells:** {len(ok)} ok, {len(records) - len(ok)} failed; "
        f"methods {', '.join(f'`{m}`' for m in cells.methods) or '–'}; "
        f"schemes {', '.join(f'`{s}`' for s in cells.schemes) or '–'}",
    ]
    starts = sorted(r["started_at"] for r in records if r.get("started_at"))
    ends = sorted(r["finished_at"] for r in records if r.get("finished_at"))
    if starts and ends:
        lines.append(f"- **Run span:** {starts[0]} to {ends[-1]}")
    out = ["### Setup", "", *lines, ""]

    counts = ds.get("counts") or {}
    if counts:
        codes = sorted({c for split in counts.values() for c in split}, key=plots.code_key)
        rows = [
            {"class": f"{c} (good)" if c == good else c, **{s: str(counts[s].get(c, 0)) for s in counts}}
            for c in codes
        ]
        rows.append({"class": "**total**", **{s: str(sum(counts[s].values())) for s in counts}})
        out += [
            f"<details><summary>Class counts per split (seed {described['config'].get('seed', 0)})</summary>",
            "",
            _table(rows),
            "</details>",
            "",
        ]

    env_keys = ("bench", "python", "torch", "pytorch_metric_learning", "device", "threads", "git_commit")
    envs = sorted({_canonical({k: _get(r, "env", k) for k in env_keys}) for r in records if r.get("env")})
    if envs:
        out += ["**Environment:**", "", _table([{k: str(v) for k, v in json.loads(e).items()} for e in envs])]
    return out


def _headline_section(cells: _Cells, rule: str) -> list[str]:
    rows = []
    for m, s in cells.cells():
        rows.append(
            {
                "method": m,
                "scheme": s,
                "seeds": str(len(cells.by_cell[(m, s)])),
                "accuracy %": _mean_ci(cells.summary(m, s, "metrics", "accuracy", scale=100)),
                "escape %": _mean_ci(cells.summary(m, s, "metrics", "escape_rate", scale=100)),
                "overkill %": _mean_ci(cells.summary(m, s, "metrics", "overkill_rate", scale=100)),
                "cost / 1000 (test mix)": _mean_ci(
                    cells.summary(m, s, "metrics", "cost_per_1000", "test_mix"), digits=2
                ),
                "cost / 1000 (production)": _mean_ci(
                    cells.summary(m, s, "metrics", "cost_per_1000", "production_mix"), digits=2
                ),
            }
        )
    return [
        "### Headline: method x scheme",
        "",
        f"Test split, rule `{rule}`. Mean over seeds ± half-width of the 95% Student-t interval"
        " (no interval with one seed). Escape: a defect judged good; overkill: a good part judged defective.",
        "",
        _table(rows),
    ]


def _significant(cmp: dict) -> bool:
    return cmp.get("p_value") is not None and cmp["p_value"] < ALPHA


def _overlap(a: dict, b: dict) -> bool:
    if a.get("ci_low") is None or b.get("ci_low") is None:
        return True  # no interval: nothing rules out that the two are equal
    return a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"]


def _paired(cells: _Cells, method: str, scheme: str, path: Sequence[str], scale: float = 100.0) -> dict:
    a = cells.values(method, scheme, *path)
    b = cells.values(method, BASELINE_SCHEME, *path)
    seeds = sorted(set(a) & set(b))

    def scaled(d):
        return [None if d[k] is None else float(d[k]) * scale for k in seeds]

    return paired_comparison(scaled(a), scaled(b))


def _method_answer(cells: _Cells, method: str) -> str:
    escapes = {s: cells.summary(method, s, "metrics", "escape_rate", scale=100) for s in cells.schemes}
    escapes = {s: v for s, v in escapes.items() if v["mean"] is not None}
    if not escapes:
        return f"- **{method}**: no escape rate was measured (no good class, or no finished cell)."
    ranked = sorted(escapes, key=lambda s: (escapes[s]["mean"], scheme_key(s)))
    best = ranked[0]
    b = escapes[best]
    if len(ranked) == 1:
        return (
            f"- **{method}**: only `{best}` ran, so there is no scheme to compare: escape rate"
            f" {_num(b['mean'], 1)}% (95% CI {_interval(b)}, n = {b['n']})."
        )
    # Schemes with the same weights on this data (natural and good-x5 on a 5:1 set) draw the
    # same batches and give the same escapes: name them together rather than as rivals.
    twins = [s for s in ranked[1:] if escapes[s] == b]
    rest = [s for s in ranked[1:] if s not in twins]
    also = f" (and `{'`, `'.join(twins)}`, with the same escape figures)" if twins else ""
    text = (
        f"- **{method}**: the lowest mean escape rate is under `{best}`{also}: {_num(b['mean'], 1)}%"
        f" (95% CI {_interval(b)}, n = {b['n']})."
    )
    if rest:
        runner = rest[0]
        r = escapes[runner]
        if _overlap(b, r):
            text += (
                f" Its interval overlaps that of `{runner}` ({_num(r['mean'], 1)}%, CI {_interval(r)}),"
                " so the evidence for a winner is weak."
            )
        else:
            text += f" Its interval lies clear of the runner-up `{runner}` ({_num(r['mean'], 1)}%, CI {_interval(r)})."
    if best != BASELINE_SCHEME and BASELINE_SCHEME in escapes:
        cmp = _paired(cells, method, best, ("metrics", "escape_rate"))
        text += (
            f" Against `uniform` ({_num(escapes[BASELINE_SCHEME]['mean'], 1)}%) the paired difference is"
            f" {_num(cmp['mean_diff'], 1)} pp (CI {_interval(cmp)}, p = {_p(cmp['p_value'])}, n = {cmp['n']}):"
            + (" significant at 0.05." if _significant(cmp) else " not significant at 0.05.")
        )
    elif best == BASELINE_SCHEME:
        text += " No scheme lowered escapes below `uniform`."
    return text


def _answer_section(cells: _Cells) -> list[str]:
    out = [
        "### Answer to the reference question",
        "",
        "The reference experiment diagnosed that the mean-anchor triplet network confused good and"
        " defective parts because every class got the same number of triplets, and proposed about"
        " five times more triplets anchored on the good class. From the numbers above:",
        "",
    ]
    ordered = [m for m in cells.methods if m.split(" ")[0] == REFERENCE_METHOD]
    ordered += [m for m in cells.methods if m not in ordered]
    out += [_method_answer(cells, m) for m in ordered]
    out.append("")
    refs = [m for m in cells.methods if m.split(" ")[0] == REFERENCE_METHOD]
    for m in refs:
        has = {s for mm, s in cells.by_cell if mm == m}
        if REFERENCE_SCHEME in has and BASELINE_SCHEME in has:
            esc = _paired(cells, m, REFERENCE_SCHEME, ("metrics", "escape_rate"))
            acc = _paired(cells, m, REFERENCE_SCHEME, ("metrics", "accuracy"))
            ovk = _paired(cells, m, REFERENCE_SCHEME, ("metrics", "overkill_rate"))
            if esc["mean_diff"] is None:
                verdict = "cannot be judged (no paired seeds with an escape rate)"
            elif _significant(esc) and esc["mean_diff"] < 0:
                verdict = "is supported: good-x5 lowers escapes significantly at 0.05"
            elif _significant(esc) and esc["mean_diff"] > 0:
                verdict = "is contradicted: good-x5 raises escapes significantly at 0.05"
            else:
                verdict = (
                    "is not confirmed: the difference is not significant at 0.05, so the evidence is weak"
                )
            out.append(
                f"**The reference's diagnosis for `{m}`** {verdict}. Paired over {esc['n']} seeds, good-x5"
                f" minus uniform: escape {_num(esc['mean_diff'], 1)} pp (CI {_interval(esc)},"
                f" p = {_p(esc['p_value'])}), overkill {_num(ovk['mean_diff'], 1)} pp (CI {_interval(ovk)},"
                f" p = {_p(ovk['p_value'])}), accuracy {_num(acc['mean_diff'], 1)} pp (CI {_interval(acc)},"
                f" p = {_p(acc['p_value'])})."
            )
            out.append("")
        else:
            out += [
                f"**The reference's diagnosis for `{m}`** cannot be tested here: `good-x5` or `uniform` did not run.",
                "",
            ]
    if not refs:
        out += [
            "`mean-anchor-triplet` did not run in this study, so the reference's diagnosis is not tested.",
            "",
        ]
    return out


def _paired_section(cells: _Cells) -> list[str]:
    rows = []
    for m, s in cells.cells():
        if s == BASELINE_SCHEME or (m, BASELINE_SCHEME) not in cells.by_cell:
            continue
        esc = _paired(cells, m, s, ("metrics", "escape_rate"))
        acc = _paired(cells, m, s, ("metrics", "accuracy"))
        rows.append(
            {
                "method": m,
                "scheme": s,
                "paired seeds": str(esc["n"] or acc["n"]),
                "Δ escape pp": _num(esc["mean_diff"], 2),
                "escape 95% CI": _interval(esc, 2),
                "escape p": _p(esc["p_value"]),
                "Δ accuracy pp": _num(acc["mean_diff"], 2),
                "accuracy 95% CI": _interval(acc, 2),
                "accuracy p": _p(acc["p_value"]),
            }
        )
    return [
        "### Paired comparisons against uniform",
        "",
        "Scheme minus `uniform` on the same seeds, in percentage points; interval and p value of the"
        " paired t test (`scipy.stats.ttest_rel`). p is `–` with fewer than two seeds or zero spread.",
        "",
        _table(rows),
    ]


_RULE_COLUMNS = (
    ("accuracy %", ("accuracy",), 100, 1),
    ("balanced acc %", ("balanced_accuracy",), 100, 1),
    ("macro F1 %", ("macro_f1",), 100, 1),
    ("escape %", ("escape_rate",), 100, 2),
    ("overkill %", ("overkill_rate",), 100, 2),
    ("defect confusion %", ("defect_confusion_rate",), 100, 2),
    ("cost/1000 test", ("cost_per_1000", "test_mix"), 1, 2),
    ("cost/1000 prod", ("cost_per_1000", "production_mix"), 1, 2),
)
_RETRIEVAL_COLUMNS = (
    ("P@1 %", "precision_at_1"),
    ("R-precision %", "r_precision"),
    ("MAP@R %", "map_at_r"),
    ("P@1 per class %", "precision_at_1_per_class"),
    ("R-precision per class %", "r_precision_per_class"),
    ("MAP@R per class %", "map_at_r_per_class"),
)


def _rules_of(cells: _Cells, method: str) -> list[str]:
    from bench.rules import RULES

    seen = {
        rule
        for (m, _), seeds in cells.by_cell.items()
        if m == method
        for rec in seeds.values()
        for rule in (rec.get("metrics_by_rule") or {})
    }
    return [r for r in RULES if r in seen] + sorted(seen - set(RULES))


def _method_sections(cells: _Cells, rule: str) -> list[str]:
    out = ["### Per-method metrics", ""]
    for m in cells.methods:
        schemes = [s for s in cells.schemes if (m, s) in cells.by_cell]
        rows = []
        for s in schemes:
            for r in _rules_of(cells, m):
                row = {"scheme": s, "rule": f"**{r}**" if r == rule else r}
                for col, path, scale, digits in _RULE_COLUMNS:
                    row[col] = _mean_ci(cells.summary(m, s, "metrics_by_rule", r, *path, scale=scale), digits)
                vals = cells.summary(m, s, "val_metrics_by_rule", r, "accuracy", scale=100)
                row["val accuracy %"] = _mean_ci(vals)
                rows.append(row)
        retrieval = [
            {
                "scheme": s,
                **{
                    col: _mean_ci(cells.summary(m, s, "metrics", key, scale=100))
                    for col, key in _RETRIEVAL_COLUMNS
                },
            }
            for s in schemes
        ]
        codes = sorted(
            {
                c
                for s in schemes
                for rec in cells.by_cell[(m, s)].values()
                for c in _get(rec, "metrics", "per_class_recall", default={})
            },
            key=plots.code_key,
        )
        recall = [
            {
                "scheme": s,
                **{
                    c: _num(cells.summary(m, s, "metrics", "per_class_recall", c, scale=100)["mean"], 1)
                    for c in codes
                },
            }
            for s in schemes
        ]
        out += [
            f"#### {m}",
            "",
            "Test metrics by rule (headline rule in bold), mean ± 95% half-width over seeds:",
            "",
            _table(rows),
            "Retrieval (test queries against the training split, `AccuracyCalculator`):",
            "",
            _table(retrieval),
            f"<details><summary>Per-class recall % ({rule}, mean over seeds)</summary>",
            "",
            _table(recall),
            "</details>",
            "",
        ]
    return out


def _timing_section(cells: _Cells) -> list[str]:
    cols = (
        ("train s", "train_s", 1),
        ("train images/s", "train_images_per_s", 0),
        ("embedding images/s", "embed_images_per_s", 0),
        ("eval s", "eval_s", 1),
        ("peak MB", "peak_rss_mb", 0),
    )
    rows = [
        {"method": m, "scheme": s, **{c: _mean_ci(cells.summary(m, s, "timing", k), d) for c, k, d in cols}}
        for m, s in cells.cells()
    ]
    return ["### Timing", "", "Mean ± 95% half-width over seeds.", "", _table(rows)]


def _sampling_section(cells: _Cells, good: str | None) -> list[str]:
    rows, shares = [], []
    for m, s in cells.cells():
        recs = list(cells.by_cell[(m, s)].values())
        anchors: dict[str, int] = defaultdict(int)
        for rec in recs:
            for code, count in (_get(rec, "sampling", "anchor_counts", default={}) or {}).items():
                anchors[code] += int(count)
        total = sum(anchors.values())
        codes = sorted(anchors, key=plots.code_key)
        defect = [anchors[c] / total for c in codes if c != good] if total else []
        rows.append(
            {
                "method": m,
                "scheme": s,
                "anchors (all seeds)": str(total),
                "good share %": _num(100 * anchors.get(good, 0) / total, 1) if total and good else "–",
                "defect share % (min–max)": f"{_num(100 * min(defect), 2)}–{_num(100 * max(defect), 2)}"
                if defect
                else "–",
                "tuples / seed": _mean_ci(cells.summary(m, s, "sampling", "tuples"), 0),
                "images seen / seed": _mean_ci(cells.summary(m, s, "sampling", "images_seen"), 0),
                "forward images / seed": _mean_ci(cells.summary(m, s, "sampling", "forward_images"), 0),
                "active share %": _mean_ci(cells.summary(m, s, "sampling", "active_share", scale=100)),
            }
        )
        if total:
            shares.append({"method": m, "scheme": s, **{c: _num(100 * anchors[c] / total, 1) for c in codes}})
    return [
        "### What the samplers drew",
        "",
        "Anchors (or first pair elements, or batch images) actually drawn, summed over seeds: the"
        " scheme's intent checked against what the method did.",
        "",
        _table(rows),
        "<details><summary>Anchor share % by class code</summary>",
        "",
        _table(shares),
        "</details>",
        "",
    ]


def _failed_section(records: Sequence[dict], labels: dict[str, str]) -> list[str]:
    failed = sorted(
        (r for r in records if not _is_ok(r)),
        key=lambda r: (
            _method_key(labels.get(r["hash"], "?")),
            scheme_key(r["config"].get("scheme", "?")),
            r["config"].get("seed", 0),
            r["hash"],
        ),
    )
    rows = [
        {
            "method": labels.get(r["hash"], r["config"].get("method", "?")),
            "scheme": str(r["config"].get("scheme")),
            "seed": str(r["config"].get("seed")),
            "hash": f"`{r['hash']}`",
            "error": _cell_text(r.get("error") or f"status {r.get('status')!r} without metrics"),
        }
        for r in failed
    ]
    return ["### Failed cells", "", _table(rows)] if rows else ["### Failed cells", "", "None.", ""]


# --------------------------------------------------------------------------- plots


def _plot_section(cells: _Cells, plot_dir: Path, prefix: str, good: str | None, rule: str) -> list[str]:
    links: list[tuple[str, Path]] = []
    for m in cells.methods:
        matrices = {}
        for s in (BASELINE_SCHEME, REFERENCE_SCHEME):
            total = None
            labels = None
            for rec in cells.by_cell.get((m, s), {}).values():
                conf = _get(rec, "metrics", "confusion")
                if not conf:
                    continue
                mat = np.asarray(conf["matrix"], dtype=np.int64)
                if total is None:
                    total, labels = mat, list(conf["labels"])
                elif mat.shape == total.shape:
                    total = total + mat
            if total is not None:
                matrices[s] = (labels, total)
        if matrices:
            path = plot_dir / f"{prefix}confusion-{_slug(m)}.png"
            plots.plot_confusions(path, f"{m}, rule {rule}", matrices, good)
            links.append((f"Confusion matrices, {m}", path))

    projections = {}
    for m in cells.methods:
        seeds = cells.by_cell.get((m, BASELINE_SCHEME)) or {}
        for seed in sorted(seeds):
            proj = seeds[seed].get("embedding_2d")
            if proj and proj.get("x"):
                projections[f"{m} (seed {seed})"] = proj
                break
    if projections:
        path = plot_dir / f"{prefix}embedding.png"
        plots.plot_embeddings(path, projections, good)
        links.append(("Embedding scatter (uniform)", path))

    if cells.cells():
        panels = {
            "accuracy (%)": {
                (m, s): cells.summary(m, s, "metrics", "accuracy", scale=100) for m, s in cells.cells()
            },
            "escape rate (%)": {
                (m, s): cells.summary(m, s, "metrics", "escape_rate", scale=100) for m, s in cells.cells()
            },
        }
        path = plot_dir / f"{prefix}accuracy-escape.png"
        plots.plot_bars(path, cells.methods, cells.schemes, panels)
        links.append(("Accuracy and escape by method and scheme", path))

    k_schemes = [s for s in cells.schemes if good_k(s) is not None]
    if len([s for s in k_schemes if s != BASELINE_SCHEME]) >= 2:
        series = {}
        for m in cells.methods:
            points = [
                (
                    good_k(s),
                    cells.summary(m, s, "metrics", "escape_rate", scale=100),
                    cells.summary(m, s, "metrics", "overkill_rate", scale=100),
                )
                for s in k_schemes
                if (m, s) in cells.by_cell
            ]
            if len(points) >= 2:
                series[m] = sorted(points, key=lambda p: p[0])
        if series:
            path = plot_dir / f"{prefix}good-k.png"
            plots.plot_good_k(path, series)
            links.append(("Escape and overkill as K grows (good-xK)", path))

    out = ["### Plots", ""]
    for title, path in links:
        rel = path.relative_to(plot_dir.parent).as_posix()
        out += [f"**{title}**", "", f"![{title}]({rel})", ""]
    if not links:
        out += ["No finished cells to plot.", ""]
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# --------------------------------------------------------------------------- assembly


def _study_title(cfg: dict) -> str:
    budget = cfg.get("budget") or {}
    steps = f", {budget['steps']} steps" if "steps" in budget else ""
    return f"{cfg.get('dataset')} · trunk {cfg.get('trunk')}{steps}"


def _studies(records: Iterable[dict]) -> list[list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        groups[_study_key(rec)].append(rec)
    return [sorted(groups[k], key=lambda r: r["hash"]) for k in sorted(groups)]


def render_report(records: Sequence[dict], plot_dir: Path) -> str:
    """The markdown of the report for ``records``; writes the plots into ``plot_dir``."""
    studies = _studies(records)
    out = [
        "# Benchmark report",
        "",
        "Generated from `results.jsonl` by `bench.report`; every number below comes from the recorded"
        " cells. Intervals are 95% Student-t intervals over seeds.",
        "",
    ]
    if not studies:
        return "\n".join([*out, "No records yet.", ""])
    used: set[str] = set()
    for study in studies:
        cfg = study[0]["config"]
        title = _study_title(cfg)
        prefix = _slug(title)
        while prefix in used:  # two studies that differ only in options the title omits
            prefix += "-b"
        used.add(prefix)
        cells = _Cells(study)
        good = next((_get(r, "dataset", "good") for r in study if _get(r, "dataset", "good")), None)
        rule = cfg.get("headline_rule", "knn5")
        out += [f"## {title}", ""]
        out += _setup_section(study, cells)
        out += _headline_section(cells, rule)
        out += _answer_section(cells)
        out += _plot_section(cells, plot_dir, prefix + "-" if len(studies) > 1 else "", good, rule)
        out += _paired_section(cells)
        out += _method_sections(cells, rule)
        out += _timing_section(cells)
        out += _sampling_section(cells, good)
        out += _failed_section(study, cells.labels)
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"


def write_report(run_dir: str | os.PathLike) -> Path:
    """(Re)build ``run_dir/report.md`` and ``run_dir/plots/*.png`` from ``run_dir/results.jsonl``.

    Deterministic: the same records give byte-identical markdown. Files are written atomically.

    Returns:
        The path of ``report.md``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    records = load_records(run_dir)
    text = render_report(records, run_dir / PLOTS_DIR)
    path = run_dir / REPORT_FILE
    write_text_atomic(path, text)
    logger.info("wrote %s from %d records", path, len(records))
    return path
