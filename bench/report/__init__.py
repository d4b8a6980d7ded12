"""Reports: markdown and plots rebuilt from a run's records (never the other way round)."""

from bench.report.build import render_report, write_report
from bench.report.cells import PLOTS_DIR, REPORT_FILE, load_records

__all__ = ["PLOTS_DIR", "REPORT_FILE", "load_records", "render_report", "write_report"]
