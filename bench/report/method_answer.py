"""The answer section's reply to its reader's own question: which method is best on each headline
metric, for whatever grid ran, against the runner-up on the same seeds.

For each metric the best cell (method x scheme, by the mean over seeds) is named, and the best
other method under the same scheme is its runner-up: the paired difference on the seeds both ran,
its 95% interval and the Holm-adjusted p value from the family of every method pair under every
scheme (``bench.report.method_pairs``), as in *Paired comparisons between methods*.
"""

from __future__ import annotations

from bench.report.cells import Cells, Value, headline, method_key, scheme_key
from bench.report.format import num, p_text, seeds_text
from bench.report.method_pairs import method_family
from bench.report.operating import paired_metrics
from bench.report.stats import ALPHA

#: Each metric the answer names a winner for, whether lower is better, and its value.
_LOWER_IS_BETTER = {"escape": True, "overkill": True, "accuracy": False}


def _metrics(cells: Cells) -> list[tuple[str, bool, Value]]:
    out = [(f"{name} (rule)", lower, headline(name)) for name, lower in _LOWER_IS_BETTER.items()]
    out += [(name, True, value) for name, value in paired_metrics(cells).items()]
    return out


def _winner_line(cells: Cells, name: str, lower: bool, value: Value) -> str:
    means = {(m, s): cells.rate(m, s, value) for m, s in cells.cells()}
    means = {k: v for k, v in means.items() if v["mean"] is not None}
    if not means:
        return f"- **{name}**: not measured by any method here (`n/a`)."
    sign = 1 if lower else -1
    ranked = sorted(means, key=lambda k: (sign * means[k]["mean"], method_key(k[0]), scheme_key(k[1])))
    best_m, best_s = ranked[0]
    word = "lowest" if lower else "highest"
    text = f"- **{word} {name}**: `{best_m}` under `{best_s}`, {num(means[(best_m, best_s)]['mean'], 1)}%"
    rivals = [m for m, s in ranked[1:] if s == best_s and m != best_m]
    if not rivals:
        return text + "; no other method ran under that scheme, so there is no paired comparison."
    runner = rivals[0]
    family = method_family(cells, value)
    key = (best_s, best_m, runner) if (best_s, best_m, runner) in family else (best_s, runner, best_m)
    cmp = family[key]
    flip = 1 if key[1] == best_m else -1
    diff = None if cmp["mean_diff"] is None else flip * cmp["mean_diff"]
    if cmp["ci_low"] is None:
        ci = "no interval"
    else:
        low, high = sorted((flip * cmp["ci_low"], flip * cmp["ci_high"]))
        ci = f"95% CI {num(low, 1)} to {num(high, 1)}"
    seeds = seeds_text(cmp["n"])
    if cmp.get("p_holm") is None:
        return (
            text
            + f"; against the runner-up `{runner}` ({num(means[(runner, best_s)]['mean'], 1)}%) the paired"
            f" difference is {num(diff, 1)} pp over {seeds}: no test (fewer than two seeds, or a"
            " difference that is the same on every seed)."
        )
    verdict = "significant" if cmp["p_holm"] < ALPHA else "not significant"
    return (
        text + f"; against the runner-up `{runner}` ({num(means[(runner, best_s)]['mean'], 1)}%) the paired"
        f" difference is {num(diff, 1)} pp ({ci}, {seeds}, p Holm {p_text(cmp['p_holm'])}"
        f" over {cmp['family']} tests): {verdict} at {ALPHA:g} after Holm adjustment."
    )


def method_answer_lines(cells: Cells) -> list[str]:
    """The lines naming the best method per metric (a study with operating points only)."""
    if len(cells.methods) < 2:
        return []
    out = [
        "**Which method**, for the grid that ran (best cell by the mean over seeds; the runner-up is"
        " the best other method under the same scheme, paired on the seeds both ran; *rule*: the"
        " headline rule's class decision; *at escape ≤ b*: the threshold chosen on validation, the"
        " fixed-budget view a line runs at):",
        "",
    ]
    out += [_winner_line(cells, name, lower, value) for name, lower, value in _metrics(cells)]
    return [*out, ""]
