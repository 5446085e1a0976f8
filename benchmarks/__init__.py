"""Benchmarks of fcplus_wsgi: `python -m benchmarks` (see docs/benchmarks.md).

Every figure is reported as a ratio against a baseline measured in the same run (bare app,
raw store read, raw cryptography, smallest store), because absolute times on a shared
2-core machine move with whatever else runs; absolute times are printed as context.
"""
