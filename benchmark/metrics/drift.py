"""Long-horizon drift: per-frame metrics averaged over fixed time windows, and two summaries.

Frames scored: the GENERATED frames 1..N-1 (frame 0 is the given first frame, identical to ground
truth for every model, so it is left out of drift curves and of ``frames_*`` means).

Windows: consecutive, non-overlapping windows of ``w = round(window_s * fps)`` frames starting at
frame 1 (default window_s = 1 s); a trailing partial window is kept only if it holds at least w/2
frames (when the video is shorter than one window, the single partial window is used). A window's
time ``t`` is the mean time ``i / fps`` of its frames, in seconds; its value is the mean of the
finite per-frame values inside it (NaN when none).

Summaries of a curve (t_k, y_k) over windows with finite y:
    slope  least-squares line slope dy/dt in <metric unit> per second (NaN with fewer than 2 windows);
    ratio  y_last / y_first (last and first finite windows; NaN if y_first == 0 or fewer than 2).
For PSNR (dB) and SSIM a negative slope / ratio < 1 is drift; for LPIPS a positive slope / ratio > 1.

Late level (the long-horizon headline since scoring protocol 6, ``drift_psnr_late``):
    late   mean of the finite per-frame values over the last ``LATE_FRACTION`` (a quarter) of the
           generated frames, i.e. frames ceil(1 + 0.75 (N-1))..N-1 (at least the last frame).
A slope measures change over time only: a video that is equally wrong throughout (frames in the
wrong order, noise) ties with a perfect one (slope 0), and for a corruption whose error grows like
strength x time the PSNR slope does not depend on the strength. The late level is the fidelity
that is left at the end of a long rollout: ground truth keeps the 60-dB cap there, a frozen,
reversed, shuffled or drifting video does not.
"""
from __future__ import annotations

import numpy as np


def window_index(num_frames: int, fps: float, window_s: float = 1.0) -> list[np.ndarray]:
    """Frame indices (from 1) of each window."""
    w = max(1, int(round(window_s * fps)))
    idx = np.arange(1, num_frames)
    wins = [idx[s:s + w] for s in range(0, len(idx), w)]
    if len(wins) > 1 and len(wins[-1]) < w / 2:
        wins = wins[:-1]
    return [x for x in wins if len(x)]


def window_curves(per_frame: dict[str, np.ndarray], fps: float, window_s: float = 1.0
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(window times (W,) s, {name: (W,) window means}) for per-frame arrays of length N."""
    n = len(next(iter(per_frame.values())))
    wins = window_index(n, fps, window_s)
    t = np.array([w.mean() / fps for w in wins], dtype=np.float64)
    curves = {}
    for k, v in per_frame.items():
        v = np.asarray(v, dtype=np.float64)
        vals = []
        for w in wins:
            x = v[w]
            x = x[np.isfinite(x)]
            vals.append(x.mean() if x.size else np.nan)
        curves[k] = np.array(vals)
    return t, curves


LATE_FRACTION = 0.25


def late_frames(num_frames: int, frac: float = LATE_FRACTION) -> np.ndarray:
    """Indices of the last ``frac`` of the generated frames 1..num_frames-1 (at least one)."""
    if num_frames < 2:
        return np.zeros((0,), dtype=np.int64)
    gen = num_frames - 1
    k = max(1, int(np.ceil(frac * gen - 1e-9)))
    return np.arange(num_frames - k, num_frames)


def late_mean(values: np.ndarray, frac: float = LATE_FRACTION) -> float:
    """Mean of the finite per-frame ``values`` (length N, frame 0 first) over :func:`late_frames`
    (NaN when none is finite)."""
    v = np.asarray(values, dtype=np.float64)
    x = v[late_frames(len(v), frac)]
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def slope_and_ratio(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope per second and last/first ratio of a windowed curve (NaN-aware)."""
    t, y = np.asarray(t, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(y)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    tt, yy = t[ok], y[ok]
    slope = float(np.polyfit(tt, yy, 1)[0])
    ratio = float(yy[-1] / yy[0]) if yy[0] != 0 else float("nan")
    return slope, ratio
