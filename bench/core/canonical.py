"""Canonical JSON: one text per value, whatever the key order, on every machine.

Cell hashes are taken over it (``bench.grid.config``), and the report groups records by it.
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys; values JSON cannot hold are written as their ``str``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
