"""Report sections that describe a study: set-up, headline table, timing, what the samplers
drew, and failed cells."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence

from bench.grid.record import PEAK_RSS_FIELD, DatasetInfo, Metrics, Record, Sampling, Timing
from bench.report import plots
from bench.report.cells import (
    Cells,
    Value,
    canonical,
    headline,
    method_key,
    scheme_key,
    settings_text,
    shared_settings,
    study_inputs,
)
from bench.report.data_lines import augment_line, inputs_line
from bench.report.format import cell_text, mean_ci, num, rate_ci, table
from bench.report.same_weights import setup_lines


def setup_section(records: Sequence[Record], cells: Cells) -> list[str]:
    cfg = records[0].config
    ok = [r for r in records if r.ok]
    described = sorted(ok or records, key=lambda r: (r.config.seed, r.hash))[0]
    ds = described.dataset or DatasetInfo()
    budget = cfg.budget.to_dict()
    seeds = sorted({r.config.seed for r in records})
    good = ds.good
    share = cfg.good_share
    lines = [
        f"- **Dataset:** `{cfg.dataset if ds.name is None else ds.name}`"
        + (f" ({cell_text(ds.source)})" if ds.source else "")
        + f"; {len(ds.classes or ())} classes, good class `{good}`"
        + (f", images {ds.image_shape[0]} x {ds.image_shape[1]}" if ds.image_shape else ""),
        *inputs_line(study_inputs(records), ds),
        *augment_line(ds),
        f"- **Trunk:** `{cfg.trunk}`; **budget:** "
        + ", ".join(f"{k} {budget[k]}" for k in sorted(budget))
        # A budget without lr (every one before per-method rates had it): each method's own rate.
        + ("" if "lr" in budget else "; **learning rate:** each method's own (its `lr` parameter)"),
        f"- **Seeds:** {', '.join(str(s) for s in seeds)} ({len(seeds)})",
        split_line(records),
        f"- **Headline rule:** `{cfg.headline_rule}`; **costs:** escape {cfg.cost_escape},"
        f" overkill {cfg.cost_overkill}; **production good share:** "
        + ("the test mix" if share is None else f"{share}"),
        f"- **Cells:** {len(ok)} ok, {len(records) - len(ok)} failed; "
        f"methods {', '.join(f'`{m}`' for m in cells.methods) or '–'}; "
        f"schemes {', '.join(f'`{s}`' for s in cells.schemes) or '–'}",
    ]
    lines += params_source_lines(records, cells) + setup_lines(records, cells.shown)
    if cells.unsampled:
        kept = ", ".join(
            f"`{m}` under `{s}`" for m, s in sorted(cells.unsampled.items(), key=lambda i: method_key(i[0]))
        )
        lines.append(
            f"- **Label-free baselines:** they draw no batches, so every scheme gives them the same"
            f" cell; each is shown and tested once: {kept}"
        )
    if cfg.dataset_options:
        lines.append(f"- **Dataset options:** {settings_text(dict(cfg.dataset_options))}")
    for title, name_field, options_field in (
        ("Method hyperparameters", "method", "params"),
        ("Scheme options", "scheme", "scheme_options"),
    ):
        shared = shared_settings(records, name_field, options_field)
        if shared:
            lines.append(
                f"- **{title}:** " + "; ".join(f"`{name}` {settings_text(v)}" for name, v in shared.items())
            )
    prints = sorted({r.dataset.fingerprint for r in ok if r.dataset and r.dataset.fingerprint})
    if len(prints) == 1:
        lines.append(f"- **Data files:** fingerprint `{prints[0]}` (paths, sizes and modification times)")
    elif prints:
        lines.append(
            f"- **Data files:** {len(prints)} fingerprints, the files changed during the run:"
            f" {', '.join(f'`{p}`' for p in prints)}"
        )
    if cells.duplicates:
        lines.append(
            f"- **Not counted:** {len(cells.duplicates)} record(s) with the config of another under a"
            f" different hash: {', '.join(f'`{h}`' for h in cells.duplicates)}"
        )
    starts = sorted(r.started_at for r in records if r.started_at)
    ends = sorted(r.finished_at for r in records if r.finished_at)
    if starts and ends:
        lines.append(f"- **Run span:** {starts[0]} to {ends[-1]}")
    out = ["### Setup", "", *lines, ""]

    counts = ds.counts or {}
    if counts:
        codes = sorted({c for split in counts.values() for c in split}, key=plots.code_key)
        rows = [
            {"class": f"{c} (good)" if c == good else c, **{s: str(counts[s].get(c, 0)) for s in counts}}
            for c in codes
        ]
        rows.append({"class": "**total**", **{s: str(sum(counts[s].values())) for s in counts}})
        out += [
            f"<details><summary>Class counts per split (seed {described.config.seed})</summary>",
            "",
            table(rows),
            "</details>",
            "",
        ]

    env_keys = ("bench", "python", "torch", "pytorch_metric_learning", "device", "threads", "git_commit")
    # The machine fingerprint's keys, where the records carry them.
    machine = ("cpu", "cpu_capability", "blas", "gpu", "numpy")
    env_keys += tuple(k for k in machine if any((r.env or {}).get(k) is not None for r in records))
    envs = sorted({canonical({k: r.env.get(k) for k in env_keys}) for r in records if r.env})
    if envs:
        out += ["**Environment:**", "", table([{k: str(v) for k, v in json.loads(e).items()} for e in envs])]
    return out


def split_line(records: Sequence[Record]) -> str:
    """Which images the study tests on, and so what its intervals over seeds cover."""
    split = next((r.config.split_seed for r in records if r.config.split_seed is not None), None)
    if split is None:
        return (
            "- **Test split:** varied with the seed (older protocol): each seed drew its own train /"
            " validation / test split, so the intervals over seeds also cover which images are tested,"
            " and a tuning's validation images may be among the test images here"
        )
    return (
        f"- **Test split:** fixed by split seed {split}: every seed is tested on the same images and"
        " draws its validation images from the others, so the intervals over seeds cover the"
        " validation draw, the training draws and the initialisation, not the choice of test images"
    )


def params_source_lines(records: Sequence[Record], cells: Cells) -> list[str]:
    """Where each method's parameters came from, when some record says (``bench run
    --params-from``); nothing when none does."""
    if not any(r.params_source for r in records):
        return []
    sources: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        sources[cells.labels.get(rec.hash, "?")].add(rec.params_source or "defaults and method_params")
    parts = [f"`{m}`: {cell_text('; '.join(sorted(sources[m])))}" for m in sorted(sources, key=method_key)]
    return ["- **Parameters from:** " + "; ".join(parts)]


def production_share(cells: Cells) -> float | None:
    """The production good share of the study (``--good-share``), None when it is the test mix."""
    return next((rec.config.good_share for seeds in cells.by_cell.values() for rec in seeds.values()), None)


def _test_mix(metrics: Metrics) -> float | None:
    return None if metrics.cost_per_1000 is None else metrics.cost_per_1000.test_mix


def _production_mix(metrics: Metrics) -> float | None:
    return None if metrics.cost_per_1000 is None else metrics.cost_per_1000.production_mix


def cost_columns(cells: Cells, short: bool = False) -> list[tuple[str, Callable[[Metrics], float | None]]]:
    """The cost column(s), each with its value in a rule's metrics: one at the test mix, plus one
    at the production mix when it differs."""
    if production_share(cells) is None:
        return [("cost/1000" if short else "cost / 1000 parts", _test_mix)]
    return [
        ("cost/1000 test" if short else "cost / 1000 (test mix)", _test_mix),
        ("cost/1000 prod" if short else "cost / 1000 (production)", _production_mix),
    ]


def rate_legend() -> str:
    return (
        "Rates in %: mean over seeds with its 95% interval (low–high), a Student-t interval on the"
        " logit scale, which stays within 0–100%; where every seed gave the same rate, the"
        " Clopper-Pearson interval of the events pooled over the seeds' parts; no interval with one"
        " seed."
    )


def cost_legend(cells: Cells) -> str:
    share = production_share(cells)
    where = (
        "at the test split's good share g (`cost / 1000 (test mix)`) and at the production good share"
        f" g = {share} (`--good-share`, `cost / 1000 (production)`)"
        if share is not None
        else "at the test split's good share g (no `--good-share` was given)"
    )
    return (
        "Cost per 1,000 parts: 1000 x ((1 - g) x escape x cost of an escape + g x overkill x cost of"
        f" an overkill), {where}; mean ± half-width of the 95% Student-t interval."
    )


HEADLINE_RATES = (("accuracy", "accuracy %"), ("escape", "escape %"), ("overkill", "overkill %"))


def headline_numbers(cells: Cells, m: str, s: str, costs: bool = True) -> dict[str, dict]:
    """One method x scheme's numbers of the headline table, by column: each headline rate's
    summary over seeds (in %, logit-scale interval) and, with ``costs``, each cost column's (plain
    Student-t interval). The report's table and ``bench.export``'s summary frame both read them."""
    out = {column: cells.rate(m, s, headline(name)) for name, column in HEADLINE_RATES}
    for column, cost in cost_columns(cells) if costs else ():
        out[column] = cells.summary(m, s, lambda rec, cost=cost: cost(rec.metrics))
    return out


def headline_row(cells: Cells, m: str, s: str, costs: bool = False) -> dict[str, str]:
    """One method x scheme's seeds and headline rates (%, mean and 95% interval), with ``costs``
    also its cost columns (mean ± half-width)."""
    rates = {column for _, column in HEADLINE_RATES}
    return {
        "method": m,
        "scheme": s,
        "seeds": str(len(cells.by_cell[(m, s)])),
        **{
            column: rate_ci(summary) if column in rates else mean_ci(summary, 1)
            for column, summary in headline_numbers(cells, m, s, costs).items()
        },
    }


def headline_section(cells: Cells, rule: str) -> list[str]:
    from bench.report import operating  # it builds on this module

    extended = operating.carries_operating_points(cells)
    rows = []
    for m, s in cells.cells():
        row = headline_row(cells, m, s, costs=True)
        rows.append(operating.headline_columns(cells, m, s, row) if extended else row)
    return [
        "### Headline: method x scheme",
        "",
        f"Test split, rule `{rule}`. {rate_legend()} Escape: a defective part judged good; overkill:"
        f" a good part judged defective. {cost_legend(cells)}",
        "",
        *(operating.headline_notes(cells) if extended else []),
        table(rows),
    ]


def _timing(get: Callable[[Timing], float | None]) -> Value:
    return lambda rec: None if rec.timing is None else get(rec.timing)


def _measures_rss(rec: Record) -> bool:
    return rec.timing is not None and rec.recorded(PEAK_RSS_FIELD)


def _measures_cuda(rec: Record) -> bool:
    return rec.timing is not None and rec.timing.fit_eval_peak_cuda_mb is not None


#: Memory columns (title, value, whether a record carries it, legend), shown when a record carries them.
MEMORY_COLUMNS = (
    (
        "fit + eval peak MB",
        _timing(lambda t: t.fit_eval_peak_rss_mb),
        _measures_rss,
        "the most resident memory training and evaluation added above the process's level when"
        " they started (Linux's high-water mark, reset for each cell after freed heap memory is"
        " returned to the system; the dataset and the cell's split are not in it; the first cell"
        " of each worker process also holds the libraries' one-time start-up memory).",
    ),
    (
        "GPU peak MB",
        _timing(lambda t: t.fit_eval_peak_cuda_mb),
        _measures_cuda,
        "the CUDA allocator's peak over training and evaluation.",
    ),
)


def timing_section(cells: Cells) -> list[str]:
    cols = [
        ("train s", _timing(lambda t: t.train_s), 1),
        ("train images/s", _timing(lambda t: t.train_images_per_s), 0),
        ("embedding images/s", _timing(lambda t: t.embed_images_per_s), 0),
        ("eval s", _timing(lambda t: t.eval_s), 1),
    ]
    records = [rec for seeds in cells.by_cell.values() for rec in seeds.values()]
    memory = [(c, value, text) for c, value, carried, text in MEMORY_COLUMNS if any(map(carried, records))]
    rows = [
        {
            "method": m,
            "scheme": s,
            **{c: mean_ci(cells.summary(m, s, value), d) for c, value, d in cols},
            **{c: mean_ci(cells.summary(m, s, value), 0) for c, value, _ in memory},
        }
        for m, s in cells.cells()
    ]
    legend = " ".join(
        [
            "Mean ± half-width of the 95% Student-t interval over seeds. *train s*: wall time of the fit;"
            " *train images/s*: nominal training images per second (steps x images per step / train s);"
            " *embedding images/s*: images embedded per second during evaluation; *eval s*: wall time"
            " of the evaluation (embedding, neighbour search, metrics).",
            *(f"{c}: {text}" for c, _, text in memory),
        ]
    )
    return ["### Timing", "", legend, "", table(rows)]


def _sampling(get: Callable[[Sampling], float | None]) -> Value:
    return lambda rec: None if rec.sampling is None else get(rec.sampling)


def sampling_section(cells: Cells, good: str | None) -> list[str]:
    rows, shares = [], []
    for m, s in cells.cells():
        recs = list(cells.by_cell[(m, s)].values())
        anchors: dict[str, int] = defaultdict(int)
        for rec in recs:
            for code, count in ((rec.sampling and rec.sampling.anchor_counts) or {}).items():
                anchors[code] += int(count)
        total = sum(anchors.values())
        codes = sorted(anchors, key=plots.code_key)
        defect = [anchors[c] / total for c in codes if c != good] if total else []
        rows.append(
            {
                "method": m,
                "scheme": s,
                "anchors (all seeds)": f"{total:,}",
                "good share %": num(100 * anchors.get(good, 0) / total, 1) if total and good else "–",
                "defect share % (min–max)": f"{num(100 * min(defect), 1)}–{num(100 * max(defect), 1)}"
                if defect
                else "–",
                "tuples / seed": mean_ci(cells.summary(m, s, _sampling(lambda d: d.tuples)), 0, grouped=True),
                "images seen / seed": mean_ci(
                    cells.summary(m, s, _sampling(lambda d: d.images_seen)), 0, grouped=True
                ),
                "forward images / seed": mean_ci(
                    cells.summary(m, s, _sampling(lambda d: d.forward_images)), 0, grouped=True
                ),
                "active share %": rate_ci(cells.rate(m, s, _sampling(lambda d: d.active_share))),
            }
        )
        if total:
            shares.append({"method": m, "scheme": s, **{c: num(100 * anchors[c] / total, 1) for c in codes}})
    return [
        "### What the samplers drew",
        "",
        "Anchors (or first pair elements, or batch images) actually drawn, summed over seeds: the"
        " scheme's intent checked against what the method did. Per seed, mean ± half-width of the"
        " 95% Student-t interval: *tuples* are what the loss scored over the run: pairs (siamese),"
        " triplets (mean-anchor triplet), images (classifier), and for the mined triplet every"
        " triplet its miner formed inside each batch, which is why its count is orders of"
        " magnitude larger for the same images; *images seen* are nominal (steps x images per"
        " step); *forward images* are the images actually put through the trunk (the mean-anchor"
        " triplet embeds one mean image per class instead of one anchor per triplet); *active"
        " share* is the share of scored tuples with a non-zero loss, averaged over steps (the"
        " tuples that still taught something), as a rate with its logit-scale interval.",
        "",
        table(rows),
        "<details><summary>Anchor share % by class code</summary>",
        "",
        table(shares),
        "</details>",
        "",
    ]


def failed_section(records: Sequence[Record], cells: Cells) -> list[str]:
    labels, schemes = cells.labels, cells.scheme_labels
    failed = sorted(
        (r for r in records if not r.ok),
        key=lambda r: (
            method_key(labels.get(r.hash, "?")),
            scheme_key(schemes.get(r.hash, "?")),
            r.config.seed,
            r.hash,
        ),
    )
    rows = [
        {
            "method": labels.get(r.hash, r.config.method),
            "scheme": schemes.get(r.hash, r.config.scheme),
            "seed": str(r.config.seed),
            "hash": f"`{r.hash}`",
            "error": cell_text(r.error or f"status {r.status!r} without metrics"),
        }
        for r in failed
    ]
    return ["### Failed cells", "", table(rows)] if rows else ["### Failed cells", "", "None.", ""]
