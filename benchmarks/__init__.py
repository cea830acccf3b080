"""The performance harness (``python benchmarks/run.py``); see ``harness.py``."""
