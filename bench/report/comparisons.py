"""The report section that answers the reference question from the paired comparisons against
the baseline scheme (``bench.report.paired``), with verdicts worded from Holm-adjusted p values."""

from __future__ import annotations

from bench.report.cells import (
    BASELINE_SCHEME,
    REFERENCE_METHOD,
    REFERENCE_SCHEME,
    Cells,
    headline,
    scheme_key,
)
from bench.report.format import interval, num, seeds_text
from bench.report.method_answer import method_answer_lines
from bench.report.operating import carries_operating_points, label_free
from bench.report.paired import families, p_phrase, power_phrase, significant
from bench.report.same_weights import members, named


def _overlap(a: dict, b: dict) -> bool:
    return a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"]


def _test_verdict(cmp: dict) -> str:
    if cmp["n"] < 2:
        return "cannot be tested: a paired t test needs at least two seeds"
    if cmp["p_value"] is None:
        return "cannot be tested: every seed gave the same difference"
    return (
        "significant at 0.05 after Holm adjustment"
        if significant(cmp)
        else "not significant at 0.05 after Holm adjustment"
    )


def _method_answer(cells: Cells, method: str, escape_family: dict) -> str:
    escapes = {s: cells.rate(method, s, headline("escape")) for s in cells.schemes}
    escapes = {s: v for s, v in escapes.items() if v["mean"] is not None}
    if not escapes:
        return f"- **{method}**: no escape rate was measured (no good class, or no finished cell)."
    ranked = sorted(escapes, key=lambda s: (escapes[s]["mean"], scheme_key(s)))
    best = ranked[0]
    b = escapes[best]
    if len(ranked) == 1:
        return (
            f"- **{method}**: only `{best}` ran, so there is no scheme to compare: escape rate"
            f" {num(b['mean'], 1)}% (95% CI {interval(b)}, n = {b['n']})."
        )
    # Schemes with the same weights on this data (natural and good-x5 on a 5:1 set) draw the
    # same batches and give the same escapes: name them together rather than as rivals.
    twins = [s for s in ranked[1:] if escapes[s] == b]
    rest = [s for s in ranked[1:] if s not in twins]
    also = f" (and `{'`, `'.join(twins)}`, with the same escape figures)" if twins else ""
    ci = f"95% CI {interval(b)}, " if b["ci_low"] is not None else ""
    text = (
        f"- **{method}**: the lowest mean escape rate is under `{best}`{also}: {num(b['mean'], 1)}%"
        f" ({ci}n = {b['n']})."
    )
    if rest:
        runner = rest[0]
        r = escapes[runner]
        if b["ci_low"] is None or r["ci_low"] is None:
            text += (
                f" `{runner}` follows ({num(r['mean'], 1)}%); with one seed there is no interval, so no"
                " scheme can be called better."
            )
        elif b["ci_low"] == b["ci_high"]:
            text += (
                f" Every seed gave the same rate, so its interval has no width and cannot set it apart"
                f" from `{runner}` ({num(r['mean'], 1)}%, CI {interval(r)}); only a paired comparison"
                " on the same seeds can."
            )
        elif _overlap(b, r):
            # Unpaired intervals ignore that both schemes ran on the same seeds; the paired test
            # (below, against uniform) is the one that answers, so overlap alone is no verdict.
            text += (
                f" Its interval overlaps that of `{runner}` ({num(r['mean'], 1)}%, CI {interval(r)});"
                " unpaired intervals cannot settle which is lower, the paired comparison on the same"
                " seeds can."
            )
        else:
            text += f" Its interval lies clear of the runner-up `{runner}` ({num(r['mean'], 1)}%, CI {interval(r)})."
    base = cells.shown_as(BASELINE_SCHEME)
    if best != base and base in escapes:
        cmp = escape_family[(method, best)]
        ci = f"CI {interval(cmp)}, " if cmp["ci_low"] is not None else ""
        text += (
            f" Against `{base}` ({num(escapes[base]['mean'], 1)}%) the paired difference is"
            f" {num(cmp['mean_diff'], 1)} pp ({ci}{seeds_text(cmp['n'])}; {p_phrase(cmp, 'escape')}):"
            f" {_test_verdict(cmp)}." + power_phrase(cmp)
        )
    elif best == base:
        text += f" No scheme lowered escapes below `{base}`."
    return text


def _diagnosis(method: str, comparisons: dict[str, dict], reference: str, base: str) -> str:
    """The verdict on the reference's diagnosis; ``reference`` and ``base`` name good-x5 and
    uniform as the sentence reads them (``good-x5 (= natural, identical weights)``)."""
    esc = comparisons["escape"]
    if esc["mean_diff"] is None:
        verdict = "cannot be judged (no paired seeds with an escape rate)"
    elif esc["n"] < 2:
        verdict = "cannot be tested with one seed: a paired t test needs at least two"
    elif esc["p_value"] is None:
        verdict = "cannot be tested: every seed gave the same escape difference"
    elif significant(esc) and esc["mean_diff"] < 0:
        verdict = "is supported: good-x5 lowers escapes significantly at 0.05 after Holm adjustment"
    elif significant(esc) and esc["mean_diff"] > 0:
        verdict = "is contradicted: good-x5 raises escapes significantly at 0.05 after Holm adjustment"
    else:
        verdict = (
            "is not confirmed: the difference is not significant at 0.05 after Holm adjustment,"
            " so the evidence is weak"
        )
    parts = []
    for metric, c in comparisons.items():
        ci = f"CI {interval(c)}, " if c["ci_low"] is not None else ""
        parts.append(f"{metric} {num(c['mean_diff'], 1)} pp ({ci}{p_phrase(c, metric)})")
    return (
        f"**The reference's diagnosis for `{method}`** {verdict}. Paired over {seeds_text(esc['n'])},"
        f" {reference} minus {base}: {'; '.join(parts)}." + power_phrase(esc)
    )


def answer_section(cells: Cells, by_metric: dict[str, dict] | None = None) -> list[str]:
    out = [
        "### Answer to the reference question",
        "",
        "The reference experiment diagnosed that the mean-anchor triplet network confused good and"
        " defective parts because every class got the same number of triplets, and proposed about"
        " five times more triplets anchored on the good class. From the numbers above (each"
        " comparison against `uniform` is one of a family, see *Paired comparisons*; verdicts use"
        " Holm-adjusted p values):",
        "",
    ]
    by_metric = by_metric if by_metric is not None else families(cells)
    ordered = [m for m in cells.methods if m.split(" ")[0] == REFERENCE_METHOD]
    ordered += [m for m in cells.methods if m not in ordered]
    extended = carries_operating_points(cells)
    out += [
        f"- **{m}**: a label-free baseline, which predicts no class (`n/a`); see *Which method* and"
        " *Operating points*."
        if extended and all(label_free(cells, m, s) for s in cells.schemes if (m, s) in cells.by_cell)
        else _method_answer(cells, m, by_metric["escape"])
        for m in ordered
    ]
    out.append("")
    if extended:
        out += method_answer_lines(cells)
    refs = [m for m in cells.methods if m.split(" ")[0] == REFERENCE_METHOD]
    # Where good-x5 gave the weights of another scheme, the group's comparison answers for it.
    ref, base = cells.shown_as(REFERENCE_SCHEME), cells.shown_as(BASELINE_SCHEME)
    names = named(ref, REFERENCE_SCHEME), named(base, BASELINE_SCHEME)
    for m in refs:
        if (m, ref) in by_metric["escape"]:
            out += [
                _diagnosis(m, {metric: by_metric[metric][(m, ref)] for metric in by_metric}, *names),
                "",
            ]
        else:
            ran = {name for (method, s) in cells.by_cell if method == m for name in members(s)}
            missing = [s for s in (REFERENCE_SCHEME, BASELINE_SCHEME) if s not in ran]
            what = (
                " and ".join(f"`{s}`" for s in missing) or f"`{REFERENCE_SCHEME}` against `{BASELINE_SCHEME}`"
            )
            verb = "did not run" if missing else "has no paired seeds"
            if not missing and ref == base:
                verb = "gives the same weights on this data, so there is no difference to test"
            out += [
                f"**The reference's diagnosis for `{m}`** cannot be tested here: {what} {verb}.",
                "",
            ]
    if not refs:
        out += [
            "`mean-anchor-triplet` did not run in this study, so the reference's diagnosis is not tested.",
            "",
        ]
    return out
