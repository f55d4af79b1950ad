"""RELIC inference: the few-step sampler, checkpoints and the streaming generator (the benchmark
adapter is benchmark/adapters/relic.py)."""
