"""Report sections that compare schemes: the generated answer to the reference question and the
paired comparisons against the baseline scheme."""

from __future__ import annotations

from collections.abc import Sequence

from bench.report.cells import ALPHA, BASELINE_SCHEME, REFERENCE_METHOD, REFERENCE_SCHEME, Cells, scheme_key
from bench.report.format import interval, num, p_text, table
from bench.report.stats import paired_comparison


def _significant(cmp: dict) -> bool:
    return cmp.get("p_value") is not None and cmp["p_value"] < ALPHA


def _overlap(a: dict, b: dict) -> bool:
    if a.get("ci_low") is None or b.get("ci_low") is None:
        return True  # no interval: nothing rules out that the two are equal
    return a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"]


def _paired(cells: Cells, method: str, scheme: str, path: Sequence[str], scale: float = 100.0) -> dict:
    a = cells.values(method, scheme, *path)
    b = cells.values(method, BASELINE_SCHEME, *path)
    seeds = sorted(set(a) & set(b))

    def scaled(d):
        return [None if d[k] is None else float(d[k]) * scale for k in seeds]

    return paired_comparison(scaled(a), scaled(b))


def _method_answer(cells: Cells, method: str) -> str:
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
            f" {num(b['mean'], 1)}% (95% CI {interval(b)}, n = {b['n']})."
        )
    # Schemes with the same weights on this data (natural and good-x5 on a 5:1 set) draw the
    # same batches and give the same escapes: name them together rather than as rivals.
    twins = [s for s in ranked[1:] if escapes[s] == b]
    rest = [s for s in ranked[1:] if s not in twins]
    also = f" (and `{'`, `'.join(twins)}`, with the same escape figures)" if twins else ""
    text = (
        f"- **{method}**: the lowest mean escape rate is under `{best}`{also}: {num(b['mean'], 1)}%"
        f" (95% CI {interval(b)}, n = {b['n']})."
    )
    if rest:
        runner = rest[0]
        r = escapes[runner]
        if _overlap(b, r):
            text += (
                f" Its interval overlaps that of `{runner}` ({num(r['mean'], 1)}%, CI {interval(r)}),"
                " so the evidence for a winner is weak."
            )
        else:
            text += f" Its interval lies clear of the runner-up `{runner}` ({num(r['mean'], 1)}%, CI {interval(r)})."
    if best != BASELINE_SCHEME and BASELINE_SCHEME in escapes:
        cmp = _paired(cells, method, best, ("metrics", "escape_rate"))
        text += (
            f" Against `uniform` ({num(escapes[BASELINE_SCHEME]['mean'], 1)}%) the paired difference is"
            f" {num(cmp['mean_diff'], 1)} pp (CI {interval(cmp)}, p = {p_text(cmp['p_value'])}, n = {cmp['n']}):"
            + (" significant at 0.05." if _significant(cmp) else " not significant at 0.05.")
        )
    elif best == BASELINE_SCHEME:
        text += " No scheme lowered escapes below `uniform`."
    return text


def answer_section(cells: Cells) -> list[str]:
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
                f" minus uniform: escape {num(esc['mean_diff'], 1)} pp (CI {interval(esc)},"
                f" p = {p_text(esc['p_value'])}), overkill {num(ovk['mean_diff'], 1)} pp (CI {interval(ovk)},"
                f" p = {p_text(ovk['p_value'])}), accuracy {num(acc['mean_diff'], 1)} pp (CI {interval(acc)},"
                f" p = {p_text(acc['p_value'])})."
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


def paired_section(cells: Cells) -> list[str]:
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
                "Δ escape pp": num(esc["mean_diff"], 2),
                "escape 95% CI": interval(esc, 2),
                "escape p": p_text(esc["p_value"]),
                "Δ accuracy pp": num(acc["mean_diff"], 2),
                "accuracy 95% CI": interval(acc, 2),
                "accuracy p": p_text(acc["p_value"]),
            }
        )
    return [
        "### Paired comparisons against uniform",
        "",
        "Scheme minus `uniform` on the same seeds, in percentage points; interval and p value of the"
        " paired t test (`scipy.stats.ttest_rel`). p is `–` with fewer than two seeds or zero spread.",
        "",
        table(rows),
    ]
