"""``python -m bench profile`` runs end to end and prints both ratio columns."""

from __future__ import annotations

import os
import subprocess
import sys


def test_profile_prints_both_ratios():
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "profile", "--steps", "20", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "vs bare loop" in proc.stdout
    assert "vs per-item pipeline" in proc.stdout
    for name in ("bare loop", "per-item pipeline", "mined-triplet", "siamese"):
        assert name in proc.stdout
