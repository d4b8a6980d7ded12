"""Build RUN_DIR/report.md and RUN_DIR/plots/*.png from the records in RUN_DIR/results.jsonl.

The report is a pure function of the records: rebuilding it gives byte-identical markdown (no
clock reads, every list sorted, fixed number formats), so it can be regenerated after any
partial run and diffed between runs. Cells are grouped into *studies* (equal in every config
field but the method, the scheme, their settings and the seed); within a study, methods and
schemes are compared over seeds.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.core.atomic import write_text_atomic
from bench.grid.record import CellConfig, Record
from bench.report.cells import (
    PLOTS_DIR,
    REPORT_FILE,
    Cells,
    as_records,
    canonical,
    load_records,
    study_config,
    study_inputs,
    study_key,
    variant_tags,
)
from bench.report.comparisons import answer_section
from bench.report.escapes import escape_section
from bench.report.figures import plot_section, slug
from bench.report.health import health_section
from bench.report.method_pairs import method_pairs_section
from bench.report.method_tables import method_sections
from bench.report.operating import carries_operating_points, operating_section
from bench.report.overview import (
    failed_section,
    headline_section,
    sampling_section,
    setup_section,
    timing_section,
)
from bench.report.paired import families, paired_section
from bench.report.seed_target import seed_target_section

logger = logging.getLogger(__name__)


def study_title(cfg: CellConfig, inputs: str | None = None) -> str:
    named = f", inputs {inputs}" if inputs else ""
    return f"{cfg.dataset} · trunk {cfg.trunk}, {cfg.budget.steps} steps{named}"


def studies(records: Iterable[Record]) -> list[list[Record]]:
    groups: dict[str, list[Record]] = defaultdict(list)
    for rec in records:
        groups[study_key(rec)].append(rec)
    return [sorted(groups[k], key=lambda r: r.hash) for k in sorted(groups)]


def study_titles(grouped: Sequence[list[Record]]) -> list[str]:
    """One heading per study of ``studies(...)``; studies that the short title cannot tell apart
    get the settings that differ between them appended (``· cost_escape=5.0``)."""
    short = [study_title(s[0].config, study_inputs(s)) for s in grouped]
    same: dict[str, list[dict]] = defaultdict(list)
    for title, study in zip(short, grouped, strict=True):
        same[title].append(study_config(study[0]))
    tags = {t: variant_tags(configs) for t, configs in same.items() if len(configs) > 1}
    return [
        f"{t} · {tags[t][canonical(study_config(s[0]))]}" if t in tags else t
        for t, s in zip(short, grouped, strict=True)
    ]


def render_report(records: Sequence[Record | Mapping[str, Any]], plot_dir: Path) -> str:
    """The markdown of the report for ``records`` (or their JSON objects, read by
    ``Record.from_dict``); writes the plots into ``plot_dir``."""
    grouped = studies(as_records(records))
    out = [
        "# Benchmark report",
        "",
        "Generated from `results.jsonl` by `bench.report`; every number below comes from the recorded"
        " cells. Intervals are 95% intervals over seeds: for rates (accuracy, escape, overkill and"
        " every other %), a Student-t interval on the logit scale (delta method), shown as"
        " `mean (low–high)`, which stays within 0–100%, and where every seed gave the same rate (0%"
        " on every seed, say) the Clopper-Pearson interval of the events pooled over the seeds' parts"
        " (0 of 3 x 450 parts: 0.0–0.3), so no rate interval is zero-width where the parts are"
        " recorded; for other quantities, the Student-t"
        " interval, shown as `mean ± half-width`; for paired differences (between schemes or between"
        " methods, on the same seeds), the"
        " Student-t interval of the mean difference. p values are two-sided paired t tests,"
        " Holm-adjusted within each family of comparisons (named where they are used).",
        "",
    ]
    if not grouped:
        return "\n".join([*out, "No records yet.", ""])
    used: set[str] = set()
    for study, title in zip(grouped, study_titles(grouped), strict=True):
        cfg = study[0].config
        prefix = slug(title)
        while prefix in used:  # titles that differ only in characters a file name drops
            prefix += "-b"
        used.add(prefix)
        cells = Cells(study)
        good = next((r.dataset.good for r in study if r.dataset and r.dataset.good), None)
        rule = cfg.headline_rule
        out += [f"## {title}", ""]
        out += setup_section(study, cells)
        out += headline_section(cells, rule)
        out += escape_section(cells, good, rule)
        out += seed_target_section(cells, study)
        comparisons = families(cells)
        out += answer_section(cells, comparisons)
        if carries_operating_points(cells):
            out += operating_section(cells, plot_dir, prefix + "-" if len(grouped) > 1 else "", rule)
        out += plot_section(cells, plot_dir, prefix + "-" if len(grouped) > 1 else "", good, rule)
        out += health_section(cells, plot_dir, prefix + "-" if len(grouped) > 1 else "")
        out += paired_section(cells, comparisons)
        out += method_pairs_section(cells)
        out += method_sections(cells, rule)
        out += timing_section(cells)
        out += sampling_section(cells, good)
        out += failed_section(study, cells)
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"


def write_report(run_dir: str | os.PathLike) -> Path:
    """(Re)build ``run_dir/report.md`` and ``run_dir/plots/*.png`` from ``run_dir/results.jsonl``.

    Deterministic: the same records give byte-identical markdown. Files are written atomically;
    PNGs in ``plots/`` the new report does not link are removed.

    Returns:
        The path of ``report.md``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    records = load_records(run_dir)
    text = render_report(records, run_dir / PLOTS_DIR)
    path = run_dir / REPORT_FILE
    write_text_atomic(path, text)
    _remove_unlinked_plots(run_dir / PLOTS_DIR, text)
    logger.info("wrote %s from %d records", path, len(records))
    return path


def _remove_unlinked_plots(plot_dir: Path, text: str) -> None:
    """Delete the PNGs in ``plot_dir`` that the report no longer links (a plot of cells that are
    gone, or of a study renamed); nothing else, and nothing outside ``plot_dir``."""
    if plot_dir.is_symlink() or not plot_dir.is_dir():  # a link could lead out of the run directory
        return
    linked = set(re.findall(rf"\]\({re.escape(plot_dir.name)}/([^/)]+\.png)\)", text))
    for png in plot_dir.glob("*.png"):
        if png.name not in linked and (png.is_file() or png.is_symlink()):
            png.unlink()
