"""Which ground-truth frames show enough texture for camera motion to be observable at all.

A frame that is blank (the camera 30 cm from a dark, untextured glass facade: the full suite's
long_horizon__street0 spends 150 of its 1,920 frames so) carries no information about how the camera
moves: no estimator can follow the ground truth itself there, and which of those frames it happens to
track flips under imperceptible pixel changes. Action following (benchmark.metrics.action_following,
protocol 4) therefore scores only the 1-s segments whose ground-truth frames are all observable, and
counts the others (``n_seg_blank``). Decided from the ground truth only, so every model of a task is
scored on the same segments.

A frame is observable when at least ``MIN_TEXTURED`` (2 %) of its pixels have a luma gradient of at
least ``GRAD_MIN`` (2 grey levels per pixel) after a Gaussian blur of 1 px (the pose estimator's own
smoothing and gradient threshold). Measured on the full suite: blank frames have 0.0-0.1 % textured
pixels, every other ground-truth frame at least 1 % on its 1st percentile and 38 % at the median of a
task (``python perf/perf_pose_validity.py`` reports the counts per task), so the threshold sits far from
both and renders that differ in the last bit do not move it.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

GRAD_MIN = 2.0        # grey levels per pixel
MIN_TEXTURED = 0.02   # fraction of the pixels
BLUR_SIGMA = 1.0      # px
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def textured_fraction(frames: np.ndarray) -> np.ndarray:
    """(N,) fraction of each frame's pixels whose blurred luma gradient is >= GRAD_MIN."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (N,H,W,3), got {frames.shape}")
    out = np.empty(len(frames))
    for i, f in enumerate(frames):   # one frame at a time: a long video never needs (N,H,W) floats
        g = gaussian_filter(f.astype(np.float32) @ _LUMA, BLUR_SIGMA)
        gy, gx = np.gradient(g)
        out[i] = float(np.mean(np.hypot(gx, gy) >= GRAD_MIN))
    return out


def observable_frames(frames: np.ndarray) -> np.ndarray:
    """(N,) bool: the frame shows enough texture for its camera motion to be observable."""
    return textured_fraction(frames) >= MIN_TEXTURED
