"""Time-reverse augmentation (RELIC paper, Sec. 3): palindrome clips that manufacture revisits.

For a clip of T frames f[0..T-1] (0-based), draw a pivot t* uniformly from the integers in
[ceil((T-1)/2), T-1] (the paper's t* ~ U(T/2, T)). The augmented clip is

    f[0], f[1], ..., f[t*], f[t*-1], f[t*-2], ..., f[2 t* - T + 1]

i.e. the clip up to the pivot followed by the same frames played backwards, T frames in all. It is
a palindrome around position t*: ``idx[t* + k] == idx[t* - k]`` for k = 1 .. T-1-t*. With
t* = T-1 nothing is reversed (the original clip).

Labels are RECOMPUTED from the re-indexed poses with :func:`datagen.actions.poses_to_actions`,
never copied: a reversed step goes from frame j+1 back to frame j, so its translation is
expressed in frame j+1's camera axes and its rotation is the inverse rotation. For a step with
pure translation or a rotation about a single axis, the reversed labels are exactly the mirrored
channels (dolly_in <-> dolly_out, pan_left <-> pan_right, ...); for combined motion they mirror up
to the (small, per-frame) coupling between translation and rotation. gamma is recomputed over the
new clip as well (the reversed half repeats displacements, so it differs from the source clip's
gamma only through which steps are repeated).
"""
from __future__ import annotations

import math

import numpy as np

from datagen.actions import poses_to_actions


def time_reverse_indices(T: int, rng: np.random.Generator, pivot: int | None = None) -> np.ndarray:
    """Frame indices (T,) int64 of a time-reversed clip; ``pivot`` overrides the random draw."""
    T = int(T)
    if T < 1:
        raise ValueError(f"clip length T must be >= 1, got {T}")
    lo, hi = math.ceil((T - 1) / 2), T - 1
    if pivot is None:
        pivot = int(rng.integers(lo, hi + 1))
    elif not (lo <= pivot <= hi):
        raise ValueError(f"pivot must be in [{lo}, {hi}] for T={T}, got {pivot}")
    fwd = np.arange(pivot + 1, dtype=np.int64)
    back = np.arange(pivot - 1, 2 * pivot - T, -1, dtype=np.int64)
    idx = np.concatenate([fwd, back])
    assert len(idx) == T
    return idx


def pivot_of(indices: np.ndarray) -> int:
    """Position of the pivot t* in a time-reversed index array (its largest entry)."""
    return int(np.argmax(np.asarray(indices)))


def time_reverse(poses: np.ndarray, rng: np.random.Generator, pivot: int | None = None, **label_kwargs):
    """Time-reverse a clip of poses (T, 4, 4): ``(indices (T,), actions (T, 13), gamma)``.

    ``actions`` and ``gamma`` are recomputed from ``poses[indices]``; ``label_kwargs`` go to
    :func:`datagen.actions.poses_to_actions` (static thresholds, dtype). Use ``indices`` to gather
    frames, depths, etc. of the augmented clip.
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"poses must have shape (T, 4, 4), got {poses.shape}")
    idx = time_reverse_indices(len(poses), rng, pivot)
    actions, gamma = poses_to_actions(poses[idx], **label_kwargs)
    return idx, actions, gamma
