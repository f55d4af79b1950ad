"""Probes: one-off measurements of a model on a benchmark suite that score with the benchmark's
estimator and metrics (each module is its own ``python -m benchmark.probes.NAME`` command and
documents its method in its docstring)."""
