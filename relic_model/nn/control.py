"""Control encoders (relative actions, absolute poses) and the frame -> latent-frame control layout.

Layout (shared by training and inference). A clip of T = 1 + 4 (F - 1) video frames has F latent
frames (temporal factor 4): latent 0 is frame 0 alone, latent j >= 1 covers video frames
4j-3 .. 4j. Actions follow :mod:`datagen.actions` (row i moves frame i to i+1), so

- ``actions_lat[j] = actions[4j-4 : 4j]`` (the 4 actions that lead to latent j's frames),
  ``actions_lat[0] = 0``;                                                  -> (F, 4, 13)
- ``poses_lat[j] = pose12[4j-3 : 4j+1]``, ``poses_lat[0] = pose12[0]`` x 4    -> (F, 4, 12)

where ``pose12`` is the absolute pose of each frame relative to frame 0 (c2w_0^-1 c2w_t, OpenCV
axes), translation divided by gamma (label units: 1 = one unit translation label), flattened
row-major as the 3x4 [R | t]. Poses at inference are integrated from actions with
:func:`datagen.actions.actions_to_poses`, exactly as datagen's inverse labels do.

Encoders (paper: temporal patchify 4x + MLP): the 4 per-frame vectors of a latent frame are
concatenated (4 x 13 = 52 or 4 x 12 = 48) and mapped by a 2-layer MLP to the model width.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from datagen.actions import ROTATION_CHANNELS, actions_to_poses

ACTION_DIM = 13
POSE_DIM = 12
ROT_UNIT_DEG = 60.0 / 16.0   # rotation channels (deg/frame) are divided by this before the MLP


def pose12_from_c2w(c2w: np.ndarray, gamma: float) -> np.ndarray:
    """(N, 4, 4) camera-to-world (metres) -> (N, 12) float32 poses relative to frame 0, translation
    in units of ``gamma`` metres (gamma <= 0 leaves metres), flattened row-major [R | t]."""
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"c2w must be (N, 4, 4), got {c2w.shape}")
    rel = np.linalg.inv(c2w[0])[None] @ c2w
    if gamma > 0:
        rel[:, :3, 3] /= gamma
    return rel[:, :3, :4].reshape(len(c2w), 12).astype(np.float32)


def latent_controls(actions: np.ndarray, pose12: np.ndarray, temporal_factor: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame controls -> per-latent-frame controls (see module docstring).

    ``actions`` (T, 13) or (T-1, 13) (row i moves frame i to i+1; a trailing row is ignored),
    ``pose12`` (T, 12) with T = 1 + temporal_factor * (F - 1). Returns ((F, tf, 13), (F, tf, 12)).
    """
    tf = int(temporal_factor)
    T = len(pose12)
    if (T - 1) % tf:
        raise ValueError(f"{T} frames is not 1 + {tf} * k")
    if len(actions) < T - 1:
        raise ValueError(f"need at least {T - 1} action rows for {T} frames, got {len(actions)}")
    F = 1 + (T - 1) // tf
    a = np.zeros((F, tf, actions.shape[1]), dtype=np.float32)
    p = np.empty((F, tf, pose12.shape[1]), dtype=np.float32)
    p[0] = pose12[0]
    if F > 1:
        a[1:] = np.asarray(actions[:T - 1], dtype=np.float32).reshape(F - 1, tf, -1)
        p[1:] = np.asarray(pose12[1:], dtype=np.float32).reshape(F - 1, tf, -1)
    return a, p


def integrate_actions(actions: np.ndarray, gamma: float, c2w0: np.ndarray | None = None) -> np.ndarray:
    """Camera-to-world poses (k, 4, 4) of the k frames reached by ``actions`` (k, 13) from ``c2w0``
    (the pose before the first action), via :func:`datagen.actions.actions_to_poses`."""
    a = np.asarray(actions, dtype=np.float64)
    pad = np.vstack([a, np.zeros((1, a.shape[1]))])
    return actions_to_poses(pad, float(gamma), c2w0)[1:]


class _MLP(nn.Sequential):
    def __init__(self, d_in: int, dim: int):
        super().__init__(nn.Linear(d_in, dim), nn.SiLU(), nn.Linear(dim, dim))


class ActionEncoder(nn.Module):
    """(B, F, tf, 13) relative actions -> (B, F, dim). Rotation channels scaled to ~unit range."""

    def __init__(self, dim: int, temporal_factor: int = 4, action_dim: int = ACTION_DIM):
        super().__init__()
        scale = torch.ones(action_dim)
        if action_dim == ACTION_DIM:
            scale[list(ROTATION_CHANNELS)] = 1.0 / ROT_UNIT_DEG
        self.register_buffer("scale", scale, persistent=False)
        self.mlp = _MLP(temporal_factor * action_dim, dim)

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        a = actions * self.scale
        return self.mlp(a.flatten(-2))


class PoseEncoder(nn.Module):
    """(B, F, tf, 12) absolute poses ([R | t] rows) -> (B, F, dim); translation scaled by
    ``translation_scale`` first."""

    def __init__(self, dim: int, temporal_factor: int = 4, pose_dim: int = POSE_DIM, translation_scale: float = 0.05):
        super().__init__()
        scale = torch.ones(pose_dim)
        if pose_dim == POSE_DIM:
            scale[[3, 7, 11]] = translation_scale
        self.register_buffer("scale", scale, persistent=False)
        self.mlp = _MLP(temporal_factor * pose_dim, dim)

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        return self.mlp((poses * self.scale).flatten(-2))


__all__ = ["ActionEncoder", "PoseEncoder", "pose12_from_c2w", "latent_controls", "integrate_actions"]
