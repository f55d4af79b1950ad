"""Automated curation: the paper's manual filters as per-frame tests, then a keep/trim/reject rule.

Inputs (one episode): poses ``c2w`` (N, 4, 4) in our convention (metres, OpenCV camera axes),
``fps``, and optionally rgb (N, H, W, 3) uint8, planar depth (N, H, W) float32 metres (inf = no
hit) and instance mask (N, H, W) int (-1 = no hit).

Per-transition kinematics (transition t goes from frame t to t+1, dt = 1/fps):
    d_t   = p_{t+1} - p_t                          translation in metres (world)
    w_t   = rotvec(R_t^T R_{t+1})                   rotation in the camera frame, degrees
    speed = |d_t| * fps (m/s);  omega = |w_t| * fps (deg/s)
    yaw_rate = wrap(yaw_{t+1} - yaw_t) * fps, yaw = heading of the optical axis about world up
A transition value is charged to both of its frames.

Filters (name: test, default threshold; defaults are justified in datagen/README.md "Curation"):
    pan_speed:             |yaw_rate| > max_pan_deg_s (120 deg/s)
    abrupt_rotation:       |w_{t+1} - w_t| * fps^2 > max_ang_accel_deg_s2 (1500 deg/s^2)
    inconsistent_velocity: |d_{t+1} - d_t| * fps^2 > max_lin_accel_m_s2 (8 m/s^2)
                           or speed > max_speed_m_s (6 m/s)
    micro_jitter:          rolling median (jitter_window_s, 1 s) of the velocity's local
                           non-linearity |d_t - (d_{t-1} + d_{t+1})/2| > jitter_lin_m (2 mm), or the
                           same on w_t > jitter_rot_deg (0.3 deg). Zero for constant acceleration;
                           a +-a position noise gives 4a. A median ignores isolated starts/stops.
    oscillation:           >= max_reversals (4) sign reversals within oscillation_window_s (3 s) of
                           any camera-frame velocity component (|v| > 0.1 m/s) or yaw/pitch rate
                           (> 5 deg/s)
    near_collision:        fraction of pixels with depth < min_clearance_m (0.25 m) > near_fraction (0.3)
    over_exposure:         mean luma > 235, or fraction of luma >= 250 > clip_fraction (0.5)
    under_exposure:        mean luma < 20, or fraction of luma <= 5 > clip_fraction (0.5)
    flicker:               luma spike: L_t differs from BOTH neighbours in the same direction by
                           more than flicker_luma (12 of 255)
    degenerate:            no-hit (sky/void) fraction > max_void_fraction (0.9), or one instance
                           covers > max_single_instance (0.97) of the frame, or rgb std < 2 (flat),
                           for at least min_degenerate_s (1 s) in a row (panning past a wall is fine)
    static_too_long:       frames of a static run (|d_t| < 1 mm and |w_t| < 0.05 deg) beyond
                           its first max_static_s (4 s)

Luma (BT.601, 0..255) and colour statistics come from :func:`image_stats` (a pixel grid of at
most ~16k pixels per frame; every pixel up to 128x128).

Decision (:func:`curate`): bad = OR of all flags, dilated by ``margin_frames``; kept segments are
the clean runs at least ``min_segment_s`` long. The episode is "rejected" if the kept frames are
fewer than ``min_kept_s`` seconds or ``min_kept_fraction`` of the episode, "trimmed" if any frame
was removed, else "kept". Every removed range records the filters that flagged frames in it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Optional

import numpy as np
from scipy.spatial.transform import Rotation

from datagen.corpus.format import FILTER_NAMES


@dataclass
class CurationThresholds:
    max_pan_deg_s: float = 120.0
    max_ang_accel_deg_s2: float = 1500.0
    max_lin_accel_m_s2: float = 8.0
    max_speed_m_s: float = 6.0
    jitter_window_s: float = 1.0
    jitter_lin_m: float = 0.002
    jitter_rot_deg: float = 0.3
    oscillation_window_s: float = 3.0
    max_reversals: int = 4
    oscillation_min_speed_m_s: float = 0.1
    oscillation_min_rate_deg_s: float = 5.0
    min_clearance_m: float = 0.25
    near_fraction: float = 0.3
    over_mean_luma: float = 235.0
    under_mean_luma: float = 20.0
    clip_fraction: float = 0.5
    flicker_luma: float = 12.0
    max_void_fraction: float = 0.9
    max_single_instance: float = 0.97
    min_rgb_std: float = 2.0
    min_degenerate_s: float = 1.0
    max_static_s: float = 4.0
    static_lin_m: float = 0.001
    static_rot_deg: float = 0.05
    # decision
    margin_frames: int = 2
    min_segment_s: float = 2.0
    min_kept_s: float = 4.0
    min_kept_fraction: float = 0.5
    disabled: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Optional[dict], where: str = "curation") -> "CurationThresholds":
        d = dict(d or {})
        names = {f.name for f in fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise ValueError(f"{where}: unknown key(s) {bad}; known: {sorted(names)}")
        for k, v in d.items():
            if k == "disabled":
                unknown = sorted(set(v) - set(FILTER_NAMES))
                if unknown:
                    raise ValueError(f"{where}.disabled: unknown filter(s) {unknown}; known: {list(FILTER_NAMES)}")
                continue
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{where}.{k}: must be a non-negative number, got {v!r}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CurationResult:
    flags: dict  # filter name -> (N,) bool
    kept: np.ndarray  # (N,) bool
    status: str
    kept_segments: list  # [[start, end), ...]
    removed: list  # [{"start", "end", "reasons"}]
    reject_reasons: list
    reasons: dict  # filter name -> flagged frame count

    def to_meta(self) -> dict:
        return {"status": self.status, "reasons": self.reasons, "reject_reasons": self.reject_reasons,
                "kept_segments": self.kept_segments, "kept_frames": int(self.kept.sum()),
                "removed": self.removed}


# ---------------------------------------------------------------------------------------------
# kinematics
def _yaw_deg(c2w: np.ndarray) -> np.ndarray:
    f = c2w[:, :3, 2]  # optical axis in world
    return np.degrees(np.arctan2(f[:, 1], f[:, 0]))


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + 180.0) % 360.0 - 180.0


def kinematics(c2w: np.ndarray) -> dict:
    """Per-transition arrays (length N-1): d (m, world), d_cam (m, camera frame), w (deg, camera
    frame rotation vector), dyaw and dpitch (deg)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    p, R = c2w[:, :3, 3], c2w[:, :3, :3]
    d = np.diff(p, axis=0)
    d_cam = np.einsum("nji,nj->ni", R[:-1], d)  # R_t^T d_t
    rel = np.einsum("nji,njk->nik", R[:-1], R[1:])
    w = np.degrees(Rotation.from_matrix(rel).as_rotvec()) if len(rel) else np.zeros((0, 3))
    f = R[:, :, 2]
    pitch = np.degrees(np.arcsin(np.clip(f[:, 2], -1, 1)))
    return {"d": d, "d_cam": d_cam, "w": w, "dyaw": _wrap(np.diff(_yaw_deg(c2w))), "dpitch": np.diff(pitch)}


def _charge(per_transition: np.ndarray, n: int) -> np.ndarray:
    """Per-transition bools (n-1) -> per-frame bools (n): a transition flags both its frames."""
    out = np.zeros(n, bool)
    if n > 1:
        out[:-1] |= per_transition
        out[1:] |= per_transition
    return out


def _rolling_median(x: np.ndarray, win: int) -> np.ndarray:
    if len(x) == 0:
        return x
    win = max(1, min(win, len(x)))
    pad = win // 2
    xp = np.pad(np.asarray(x, np.float64), (pad, win - 1 - pad), constant_values=np.nan)  # windows shrink at the ends
    return np.nanmedian(np.lib.stride_tricks.sliding_window_view(xp, win), axis=1)


def _window_count(events: np.ndarray, win: int) -> np.ndarray:
    """For each index, the number of events in the window of length `win` centred on it."""
    c = np.concatenate([[0], np.cumsum(events.astype(np.int64))])
    n = len(events)
    lo = np.clip(np.arange(n) - win // 2, 0, n)
    hi = np.clip(np.arange(n) + (win - win // 2), 0, n)
    return c[hi] - c[lo]


def _reversals(sig: np.ndarray, floor: float) -> np.ndarray:
    """Bool per index: sign of `sig` (ignoring |sig| <= floor) flips relative to the last active sign."""
    out = np.zeros(len(sig), bool)
    last = 0
    for i, v in enumerate(sig):
        s = 0 if abs(v) <= floor else (1 if v > 0 else -1)
        if s:
            if last and s != last:
                out[i] = True
            last = s
    return out


def _luma(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


MAX_STAT_PIXELS = 16384  # image statistics use a pixel grid of at most ~this many pixels per frame


def image_stats(rgb: np.ndarray) -> dict:
    """Per-frame image statistics on a regular pixel grid (every s-th row/column, s chosen so at
    most ~MAX_STAT_PIXELS pixels are used; s = 1 up to 128x128): mean luma (BT.601, 0..255),
    fractions of luma >= 250 and <= 5, and the largest per-channel standard deviation."""
    n, h, w = rgb.shape[:3]
    s = max(1, int(np.ceil(np.sqrt(h * w / MAX_STAT_PIXELS))))
    out = {k: np.zeros(n) for k in ("mean", "hi", "lo", "std")}
    for a in range(0, n, 64):  # chunks of frames bound the float32 working set
        x = rgb[a:a + 64, ::s, ::s].reshape(min(64, n - a), -1, 3).astype(np.float32)
        L = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
        out["mean"][a:a + 64] = L.mean(axis=1)
        out["hi"][a:a + 64] = (L >= 250).mean(axis=1)
        out["lo"][a:a + 64] = (L <= 5).mean(axis=1)
        out["std"][a:a + 64] = x.std(axis=1).max(axis=1)
    return out


# ---------------------------------------------------------------------------------------------
# filters: each returns (N,) bool
def pan_speed(c2w, fps, th: CurationThresholds) -> np.ndarray:
    k = kinematics(c2w)
    return _charge(np.abs(k["dyaw"]) * fps > th.max_pan_deg_s, len(c2w))


def abrupt_rotation(c2w, fps, th: CurationThresholds) -> np.ndarray:
    w = kinematics(c2w)["w"]
    n = len(c2w)
    if len(w) < 2:
        return np.zeros(n, bool)
    acc = np.linalg.norm(np.diff(w, axis=0), axis=1) * fps * fps  # deg/s^2, between transitions t, t+1
    out = np.zeros(n, bool)
    hit = acc > th.max_ang_accel_deg_s2  # involves frames t, t+1, t+2
    for s in range(3):
        out[s:s + len(hit)] |= hit
    return out


def inconsistent_velocity(c2w, fps, th: CurationThresholds) -> np.ndarray:
    d = kinematics(c2w)["d"]
    n = len(c2w)
    out = _charge(np.linalg.norm(d, axis=1) * fps > th.max_speed_m_s, n)
    if len(d) >= 2:
        acc = np.linalg.norm(np.diff(d, axis=0), axis=1) * fps * fps
        hit = acc > th.max_lin_accel_m_s2
        for s in range(3):
            out[s:s + len(hit)] |= hit
    return out


def micro_jitter(c2w, fps, th: CurationThresholds) -> np.ndarray:
    k = kinematics(c2w)
    n = len(c2w)
    if n < 4:
        return np.zeros(n, bool)
    win = max(3, int(round(th.jitter_window_s * fps)))

    def nonlin(x):
        j = np.linalg.norm(x[1:-1] - 0.5 * (x[:-2] + x[2:]), axis=1)  # per transition 1..n-3
        return np.concatenate([[j[0]], j, [j[-1]]])  # per transition 0..n-2

    jl = _rolling_median(nonlin(k["d"]), win) > th.jitter_lin_m
    jr = _rolling_median(nonlin(k["w"]), win) > th.jitter_rot_deg
    return _charge(jl | jr, n)


def oscillation(c2w, fps, th: CurationThresholds) -> np.ndarray:
    k = kinematics(c2w)
    n = len(c2w)
    if n < 3:
        return np.zeros(n, bool)
    win = max(2, int(round(th.oscillation_window_s * fps)))
    lin_floor = th.oscillation_min_speed_m_s / fps
    rate_floor = th.oscillation_min_rate_deg_s / fps
    hit = np.zeros(n - 1, bool)
    signals = [(k["d_cam"][:, i], lin_floor) for i in range(3)] + [(k["dyaw"], rate_floor), (k["dpitch"], rate_floor)]
    for sig, floor in signals:
        rev = _reversals(sig, floor)
        hit |= _window_count(rev, win) >= th.max_reversals
    return _charge(hit, n)


def near_collision(depth, th: CurationThresholds) -> np.ndarray:
    close = (depth < th.min_clearance_m).reshape(len(depth), -1).mean(axis=1)
    return close > th.near_fraction


def exposure(rgb, th: CurationThresholds, stats: Optional[dict] = None) -> tuple[np.ndarray, np.ndarray]:
    """(over, under) per frame."""
    st = stats or image_stats(rgb)
    over = (st["mean"] > th.over_mean_luma) | (st["hi"] > th.clip_fraction)
    under = (st["mean"] < th.under_mean_luma) | (st["lo"] > th.clip_fraction)
    return over, under


def flicker(rgb, th: CurationThresholds, stats: Optional[dict] = None) -> np.ndarray:
    n = len(rgb)
    out = np.zeros(n, bool)
    if n < 3:
        return out
    L = (stats or image_stats(rgb))["mean"]
    d1 = L[1:-1] - L[:-2]
    d2 = L[1:-1] - L[2:]
    spike = (np.sign(d1) == np.sign(d2)) & (np.minimum(np.abs(d1), np.abs(d2)) > th.flicker_luma)
    out[1:-1] = spike
    return out


def degenerate(th: CurationThresholds, depth=None, mask=None, rgb=None, stats: Optional[dict] = None) -> np.ndarray:
    n = len(next(a for a in (depth, mask, rgb) if a is not None))
    out = np.zeros(n, bool)
    if depth is not None:
        out |= (~np.isfinite(depth)).reshape(n, -1).mean(axis=1) > th.max_void_fraction
    if mask is not None:
        m = mask.reshape(n, -1)
        for i in range(n):
            ids = m[i][m[i] >= 0]
            if ids.size:
                out[i] |= np.bincount(ids).max() / m.shape[1] > th.max_single_instance
    if rgb is not None:
        out |= (stats or image_stats(rgb))["std"] < th.min_rgb_std
    return out


def _long_runs(b: np.ndarray, min_len: int) -> np.ndarray:
    """Keep only the runs of True at least `min_len` long."""
    out = np.zeros_like(b)
    for s, e in _runs(b):
        if e - s >= min_len:
            out[s:e] = True
    return out


def static_too_long(c2w, fps, th: CurationThresholds) -> np.ndarray:
    k = kinematics(c2w)
    n = len(c2w)
    out = np.zeros(n, bool)
    if n < 2:
        return out
    still = (np.linalg.norm(k["d"], axis=1) < th.static_lin_m) & (np.linalg.norm(k["w"], axis=1) < th.static_rot_deg)
    limit = int(round(th.max_static_s * fps))  # transitions allowed in one static run
    run = 0
    for t, s in enumerate(still):
        run = run + 1 if s else 0
        if run > limit:
            out[t + 1] = True
    return out


# ---------------------------------------------------------------------------------------------
def run_filters(c2w, fps, th: CurationThresholds, rgb=None, depth=None, mask=None) -> dict:
    """All filters' per-frame flags {name: (N,) bool}; image filters are all-False without images."""
    c2w = np.asarray(c2w, dtype=np.float64)
    n = len(c2w)
    z = np.zeros(n, bool)
    st = image_stats(rgb) if rgb is not None else None
    flags = {
        "pan_speed": pan_speed(c2w, fps, th),
        "abrupt_rotation": abrupt_rotation(c2w, fps, th),
        "inconsistent_velocity": inconsistent_velocity(c2w, fps, th),
        "micro_jitter": micro_jitter(c2w, fps, th),
        "oscillation": oscillation(c2w, fps, th),
        "near_collision": near_collision(depth, th) if depth is not None else z.copy(),
        "flicker": flicker(rgb, th, st) if rgb is not None else z.copy(),
        "degenerate": _long_runs(degenerate(th, depth=depth, mask=mask, rgb=rgb, stats=st),
                                 max(1, int(round(th.min_degenerate_s * fps)))) if any(
            a is not None for a in (depth, mask, rgb)) else z.copy(),
        "static_too_long": static_too_long(c2w, fps, th),
    }
    if rgb is not None:
        flags["over_exposure"], flags["under_exposure"] = exposure(rgb, th, st)
    else:
        flags["over_exposure"], flags["under_exposure"] = z.copy(), z.copy()
    for name in th.disabled:
        flags[name] = z.copy()
    return {name: flags[name] for name in FILTER_NAMES}


def _runs(b: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True in a bool array."""
    if not len(b):
        return []
    x = np.concatenate([[0], b.astype(np.int8), [0]])
    d = np.diff(x)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def decide(flags: dict, fps: float, th: CurationThresholds) -> CurationResult:
    """Keep / trim / reject from per-frame flags (rule in the module docstring)."""
    n = len(next(iter(flags.values())))
    bad = np.zeros(n, bool)
    for v in flags.values():
        bad |= v
    if th.margin_frames and bad.any():
        idx = np.flatnonzero(bad)
        for s in range(-th.margin_frames, th.margin_frames + 1):
            bad[np.clip(idx + s, 0, n - 1)] = True
    min_seg = max(1, int(round(th.min_segment_s * fps)))
    kept = np.zeros(n, bool)
    segs = []
    for s, e in _runs(~bad):
        if e - s >= min_seg:
            kept[s:e] = True
            segs.append([s, e])
    reasons = {k: int(v.sum()) for k, v in flags.items() if v.any()}
    removed = []
    for s, e in _runs(~kept):
        rs = [k for k, v in flags.items() if v[s:e].any()]
        removed.append({"start": s, "end": e, "reasons": rs or ["short_segment"]})
    kept_n = int(kept.sum())
    if kept_n < th.min_kept_s * fps or kept_n < th.min_kept_fraction * n:
        status = "rejected"
        reject = sorted(reasons, key=lambda k: -reasons[k]) or ["too_short"]
        kept[:] = False
        segs = []
    else:
        status = "kept" if kept_n == n else "trimmed"
        reject = []
    return CurationResult(flags=flags, kept=kept, status=status, kept_segments=segs, removed=removed,
                          reject_reasons=reject, reasons=reasons)


def curate(c2w, fps, th: Optional[CurationThresholds] = None, rgb=None, depth=None, mask=None) -> CurationResult:
    """Run every filter on one episode and decide keep / trim / reject."""
    th = th or CurationThresholds()
    return decide(run_filters(c2w, fps, th, rgb=rgb, depth=depth, mask=mask), fps, th)
