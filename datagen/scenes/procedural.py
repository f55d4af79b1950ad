"""What identifies a procedural scene: the generator version and the spec its scene file stores.

A procedural scene is regenerated from ``(family, seed, generator_version, params)``; the families
(``datagen.scenes.families``) build that spec with :func:`procedural_spec` and the scene library
(``datagen.scenes.library``) refuses a file whose ``generator_version`` is not ``GENERATOR_VERSION``.
This module sits below both, so neither imports the other for it.
"""
from __future__ import annotations

# Version of the procedural generators' OUTPUT. Bump it whenever a change alters what any
# (family, seed) generates (geometry, materials, objects, spawn), so that old scene files are
# refused with a clear message instead of silently regenerating a different scene.
GENERATOR_VERSION = 1


def procedural_spec(family: str, seed: int, params: dict) -> dict:
    """The scene-file spec of procedural scene ``seed`` of ``family`` made with ``params``:
    ``{"family", "seed", "generator_version", "params"}`` (in that order)."""
    return {"family": family, "seed": int(seed), "generator_version": GENERATOR_VERSION, "params": params}
