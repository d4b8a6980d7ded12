"""bench: a fair benchmarking harness for embedding methods in automated visual inspection."""

__version__ = "0.1.0"
