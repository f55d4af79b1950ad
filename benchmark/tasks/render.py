"""Re-render a task's held-out scene with the embedded renderer (for reference baselines).

A task records how its scene was made in ``task.meta["scene"]`` = {"family", "seed", "fov_deg"}
(written by :mod:`benchmark.tasks.suite`), so the exact scene can be regenerated
deterministically with ``datagen.scenes.library.generate_scene(family, seed)``.
"""
from __future__ import annotations

import numpy as np

from datagen.scenes.library import generate_scene


def scene_spec(task) -> dict:
    spec = task.meta.get("scene")
    if not spec or "family" not in spec or "seed" not in spec:
        raise RuntimeError(f"task {task.task_id}: meta has no scene spec (family/seed); rebuild the suite")
    return spec


def make_backend(family: str, seed: int, width: int, height: int, fov_deg: float):
    """An EmbeddedBackend on ``generate_scene(family, seed)`` at (width, height, horizontal fov)."""
    try:
        from datagen.backends.embedded import EmbeddedBackend  # deferred: it imports open3d and numba
    except ImportError as e:  # pragma: no cover - only while datagen is incomplete
        raise RuntimeError(f"the embedded renderer is not available ({e}); it is needed to render tasks") from e
    scene = generate_scene(family, int(seed))
    return EmbeddedBackend(scene, width=int(width), height=int(height), fov=float(fov_deg))


def task_backend(task, seed_offset: int = 0):
    """Backend for the task's scene (``seed_offset`` != 0: a sibling scene of the same family)."""
    spec = scene_spec(task)
    return make_backend(spec["family"], int(spec["seed"]) + seed_offset, task.width, task.height, spec["fov_deg"])


def render_rgb(backend, poses: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 renders at ``poses`` (N, 4, 4) camera-to-world."""
    frames = backend.capture_batch([np.asarray(p, dtype=np.float64) for p in poses], kinds=("rgb",))
    return np.stack([f.rgb for f in frames]).astype(np.uint8)
