"""RELIC inference: the few-step sampler, checkpoints, the streaming generator and the benchmark adapter."""
