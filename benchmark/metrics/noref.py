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
    lap = cv2.Laplacian(y, cv2.CV_32F, ksize=1)
    _, lap_sd = cv2.meanStdDev(lap)
    y_mean, y_sd = cv2.meanStdDev(y)
    f = rgb.astype(np.float32)
    r, g, b = cv2.split(f)
    rg = cv2.subtract(r, g)
    yb = cv2.subtract(cv2.addWeighted(r, 0.5, g, 0.5, 0.0), b)
    rg_m, rg_s = cv2.meanStdDev(rg)
    yb_m, yb_s = cv2.meanStdDev(yb)
    colourfulness = float(np.sqrt(rg_s[0, 0] ** 2 + yb_s[0, 0] ** 2) + 0.3 * np.sqrt(rg_m[0, 0] ** 2 + yb_m[0, 0] ** 2))
    mx = cv2.max(cv2.max(r, g), b)
    mn = cv2.min(cv2.min(r, g), b)
    sat = cv2.divide(cv2.subtract(mx, mn), cv2.max(mx, 1.0))  # 0 where max = 0 (numerator 0)
    return {
        "sharpness": float(lap_sd[0, 0] ** 2),
        "luma_mean": float(y_mean[0, 0]),
        "luma_std": float(y_sd[0, 0]),
        "colourfulness": colourfulness,
        "saturation": float(cv2.mean(sat)[0]),
    }


def video_stats(frames: np.ndarray, workers: int = 1) -> dict[str, np.ndarray]:
    """Per-frame NOREF_STATS of a video (N,H,W,3) uint8 -> {name: (N,) float64}."""
    if workers > 1 and len(frames) > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=workers) as ex:
            rows = list(ex.map(frame_stats, frames))
    else:
        rows = [frame_stats(f) for f in frames]
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in NOREF_STATS}
