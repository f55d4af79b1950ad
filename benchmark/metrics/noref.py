"""No-reference image statistics, per frame (used for drift curves: blur, fading, colour shifts).

Input: RGB uint8 frames (N,H,W,3). Luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, as
OpenCV's RGB2GRAY), values 0..255.

sharpness       variance of the 3x3 Laplacian (``cv2.Laplacian(Y, CV_64F, ksize=1)``; kernel
                [[0,1,0],[1,-4,1],[0,1,0]]) of the luma image; in grey-level^2. Falls with blur.
luma_mean       mean of Y over the frame (exposure), 0..255.
luma_std        standard deviation of Y over the frame (global contrast), grey levels.
colourfulness   Hasler & Suesstrunk 2003: rg = R - G, yb = (R + G)/2 - B,
                ``sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)``, in grey levels.
saturation      mean HSV saturation, ``(max(R,G,B) - min(R,G,B)) / max(R,G,B)`` (0 where max = 0),
                in 0..1.
"""
from __future__ import annotations

import cv2
import numpy as np

NOREF_STATS = ("sharpness", "luma_mean", "luma_std", "colourfulness", "saturation")


def frame_stats(rgb: np.ndarray) -> dict[str, float]:
    """The NOREF_STATS of one RGB uint8 frame (H,W,3)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 frame (H,W,3), got {rgb.dtype} {rgb.shape}")
    y = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(y, cv2.CV_64F, ksize=1)
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    colourfulness = float(np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))
    mx = rgb.max(axis=2).astype(np.float32)
    mn = rgb.min(axis=2).astype(np.float32)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1.0), 0.0)
    return {
        "sharpness": float(lap.var()),
        "luma_mean": float(y.mean()),
        "luma_std": float(y.std()),
        "colourfulness": colourfulness,
        "saturation": float(sat.mean()),
    }


def video_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame NOREF_STATS of a video (N,H,W,3) uint8 -> {name: (N,) float64}."""
    rows = [frame_stats(f) for f in frames]
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in NOREF_STATS}
