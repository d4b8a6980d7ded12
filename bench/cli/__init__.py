"""``python -m bench``: run grids, tune, list plug-ins, rebuild reports, describe datasets."""

from bench.cli.main import main

__all__ = ["main"]
