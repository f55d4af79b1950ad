"""Clip augmentations that re-index frames and recompute labels: time reverse and pause.

Time reverse (RELIC paper, Sec. 3): palindrome clips that manufacture revisits.

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

Pause (ours; what a camera that stops would record): the clip up to a start frame k, then frame k
held to the end, ``f[0], ..., f[k], f[k], ..., f[k]`` (T frames). With k = 0 the whole clip is a
still shot of its first frame. A static camera in a static scene renders identical frames, so the
held frames ARE the frames such a trajectory would have (no image is synthesised), and the labels,
recomputed from the re-indexed poses, are the corpus's own "static" rows from k on. k is 0 with
probability ``from_first_prob``, else uniform in [1, T-2] (a pause inside the clip).
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


def pause_indices(T: int, rng: np.random.Generator, start: int | None = None,
                  from_first_prob: float = 0.5) -> np.ndarray:
    """Frame indices (T,) int64 of a paused clip (module docstring); ``start`` overrides the draw."""
    T = int(T)
    if T < 2:
        raise ValueError(f"clip length T must be >= 2 to pause, got {T}")
    if start is None:
        start = 0 if (T < 3 or rng.random() < from_first_prob) else int(rng.integers(1, T - 1))
    elif not (0 <= start <= T - 2):
        raise ValueError(f"pause start must be in [0, {T - 2}] for T={T}, got {start}")
    return np.minimum(np.arange(T, dtype=np.int64), start)


def pause(poses: np.ndarray, rng: np.random.Generator, start: int | None = None, from_first_prob: float = 0.5,
          **label_kwargs):
    """Pause a clip of poses (T, 4, 4): ``(indices (T,), actions (T, 13), gamma)``, labels recomputed
    from ``poses[indices]`` (:func:`datagen.actions.poses_to_actions`; the held steps are static)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"poses must have shape (T, 4, 4), got {poses.shape}")
    idx = pause_indices(len(poses), rng, start, from_first_prob)
    actions, gamma = poses_to_actions(poses[idx], **label_kwargs)
    return idx, actions, gamma
