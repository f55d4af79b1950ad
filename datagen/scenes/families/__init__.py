"""Procedural scene families. Each module exposes ``generate(seed, params) -> Scene``."""
