"""Shared fixtures: the digits data set split once per session."""

from __future__ import annotations

import pytest
import torch

from bench.datasets import load_dataset, split_dataset


@pytest.fixture(scope="session")
def digits_splits():
    """scikit-learn digits, split train / val / test with seed 0 (no download, ~1,800 images)."""
    return split_dataset(load_dataset("digits"), seed=0)


@pytest.fixture(scope="session", autouse=True)
def private_disk_cache(tmp_path_factory):
    """Decoded images the tests cache go to a temporary folder (``$BENCH_CACHE_DIR``, inherited by
    the CLI subprocesses), never the user's ``~/.cache/bench``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.mktemp("bench-cache")))
        yield


@pytest.fixture(scope="session", autouse=True)
def single_thread():
    """Run the tests' in-process training on one intra-op thread, as the runner does by default.

    On a small shared machine, torch's default of one thread per core slows tiny models by
    10-100x as soon as other processes compete for the cores (threads spin-wait on each
    other); one thread keeps test time predictable. Fit itself never touches this setting.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_plots(monkeypatch):
    """For tests that read the report's markdown only: skip drawing its PNGs (``test_report.py``
    checks them), which is most of a small report's build time."""
    monkeypatch.setattr("bench.report.build.plot_section", lambda *args: ["### Plots", ""])
