"""Per-latent-frame control tensors of a training clip, using the layout defined once in
``relic_model.nn.control`` (shared with inference): latent 0 = first image (zero actions, identity
pose), latent j >= 1 = video frames 4j-3..4j with the 4 actions leading into them; poses relative
to frame 0 with translation in units of gamma, flattened [R | t].

Poses are integrated from the clip's actions with ``datagen.actions.actions_to_poses`` (done in
``data.clips``), exactly as datagen's inverse labels do, never read from the ground-truth track.
"""
from __future__ import annotations

import numpy as np

from relic_model.nn.control import latent_controls, pose12_from_c2w


def num_video_frames(latent_frames: int, temporal_factor: int) -> int:
    return 1 + temporal_factor * (latent_frames - 1)


def clip_controls(actions: np.ndarray, gamma: float, poses: np.ndarray, temporal_factor: int):
    """(T, 13) actions, gamma, (T, 4, 4) integrated relative poses -> ((F, tf, 13), (F, tf, 12))."""
    return latent_controls(np.asarray(actions, np.float32), pose12_from_c2w(poses, gamma), temporal_factor)
