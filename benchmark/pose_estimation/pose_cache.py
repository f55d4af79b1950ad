"""On-disk cache of pose estimates, keyed by everything that determines them (opt-in).

Set ``RELIC_POSE_CACHE=DIR`` and ``run_estimator`` looks a built-in estimator's result up before running
it and stores it after. Scoring the same video twice (the ground truth in ``perf_pose_validity.py`` and
the ``oracle`` model of ``relic bench run``; a re-scored run after a metric change) then estimates once.

Key: SHA-256 over the estimator's name, the source of every module of ``benchmark/pose_estimation``
(a change to any estimator invalidates the cache), the numpy / scipy / numba versions, and the bytes,
shape and dtype of the frames, K, ``depth0`` and ``depth_ref``. The estimators are deterministic (same
inputs, bit-identical poses: tested), so a hit returns exactly what a run would. Checks of that
determinism must not read the cache (``run_estimator(..., use_cache=False)``). Entries are written
atomically; an unreadable entry is recomputed and replaced.
"""
from __future__ import annotations

import hashlib
import io
import os
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from datagen.atomic import atomic_write_bytes

ENV = "RELIC_POSE_CACHE"


def cache_dir() -> Optional[Path]:
    d = os.environ.get(ENV, "").strip()
    return Path(d) if d else None


@lru_cache(maxsize=1)
def _code_hash() -> str:
    h = hashlib.sha256()
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    import numba
    import scipy

    h.update(f"numpy {np.__version__} scipy {scipy.__version__} numba {numba.__version__}".encode())
    return h.hexdigest()


def key(name: str, frames: np.ndarray, K: np.ndarray, depth0, depth_ref, ref_poses=None) -> str:
    h = hashlib.sha256(f"{name}\0{_code_hash()}".encode())
    for label, a in (("frames", frames), ("K", K), ("depth0", depth0), ("depth_ref", depth_ref), ("ref_poses", ref_poses)):
        if a is None:
            h.update(f"{label}:none;".encode())
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{label}:{a.dtype.str}:{a.shape};".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def load(k: str):
    """(poses, step_kind, notes, metric) of entry ``k``, or None (no cache, no entry, unreadable)."""
    d = cache_dir()
    if d is None:
        return None
    f = d / k[:2] / f"{k}.npz"
    if not f.exists():
        return None
    try:
        with np.load(f, allow_pickle=False) as z:
            return (z["poses"], [str(s) for s in z["step_kind"]], [str(s) for s in z["notes"]],
                    bool(z["metric"]))
    except Exception:  # noqa: BLE001 - a damaged entry is recomputed
        return None


def store(k: str, poses: np.ndarray, step_kind, notes, metric: bool) -> None:
    d = cache_dir()
    if d is None:
        return
    buf = io.BytesIO()
    np.savez(buf, poses=np.asarray(poses, dtype=np.float64), step_kind=np.asarray(list(step_kind), dtype=str),
             notes=np.asarray(list(notes), dtype=str), metric=np.asarray(bool(metric)))
    f = d / k[:2] / f"{k}.npz"
    f.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(f, buf.getvalue())
