"""Scheme names as the harness spells them: the ``good-xK`` family and the baseline.

Pure string parsing, without torch, so that the report reads scheme names exactly as the
sampling stage defines them.
"""

from __future__ import annotations

import re

#: The scheme every other one is compared against (the reference experiment's choice).
BASELINE_SCHEME = "uniform"
#: ``good-xK``: the good class weighs K times each defect class, K a positive number.
GOOD_X = re.compile(r"^good-x(?P<k>\d+(?:\.\d+)?)$")


def good_x_weight(name: str) -> float | None:
    """K of a well-formed ``good-xK`` name (``good-x5`` -> 5.0), else None."""
    match = GOOD_X.match(name)
    return float(match["k"]) if match else None
