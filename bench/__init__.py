"""Benchmarks for oms-streams: figures and ratios, never assertions. Run with ``python -m bench.run``."""
