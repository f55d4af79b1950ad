"""First-view segments: the parts of a task where the camera still sees what frame 0 showed.

Every model is given frame 0; while the camera looks at surfaces frame 0 saw, a model can follow
the actions without inventing content (the ``reproject`` baseline shows exactly that content and
black holes elsewhere), and beyond them it must hallucinate. Action following is therefore also
reported on the 1-s segments inside the first view (``rpe_trans@first_view``,
``rpe_rot_deg@first_view`` in benchmark.scoring), which is where a feature-based pose estimator can
see a geometric baseline's motion at all (measured on the full suite: reproject videos are 57 %
black on average, and on segments that are mostly black the estimator loses track).

Definitions (ground truth only, the same for every model of a task):

- ``first_view_fraction``: per frame i, the fraction of its finite-depth pixels (sky excluded) that
  are co-visible with frame 0 (benchmark.metrics.retrieval.covisibility: unprojected with frame i's
  GT depth, moved into frame 0's camera, inside its image and within 5 % of its depth); frames
  with no finite depth get 0.
- ``first_view_segments``: for the RPE delta d (frames), the boolean mask over the overlapping
  segments (i, i + d), i = 0 .. N-d-1 (evo's ``all_pairs`` order), true when EVERY frame i..i+d has a
  first-view fraction of at least ``FIRST_VIEW_MIN`` (0.5).
- ``first_view_rpe``: the 1-s RPE (trans m, rot deg; RMSE) over those segments, with the Sim(3)
  alignment fitted on the frames of those segments only (benchmark.metrics.rpe, 4.), i.e. the
  first view scored as its own clip. With the whole-trajectory alignment instead, a model that
  shows nothing after the first view (reproject: black, pose held) got its first-view part scaled
  by the flat remainder (full suite, opencv estimator: reproject 0.328 m vs oracle 0.231 vs static
  0.326 with the whole-trajectory alignment; 0.210 vs 0.187 vs 0.326 aligned on the first view).
"""
from __future__ import annotations

import numpy as np

from benchmark.metrics.retrieval import covisibility
from benchmark.metrics.rpe import compute_rpe

FIRST_VIEW_MIN = 0.5


def first_view_fraction(K: np.ndarray, depth: np.ndarray, poses: np.ndarray, rel_tol: float = 0.05) -> np.ndarray:
    """(N,) fraction of each frame's finite-depth pixels co-visible with frame 0 (module docstring).
    ``depth`` (N, H, W) planar GT depth in metres (inf = sky), ``poses`` (N, 4, 4) GT camera-to-world."""
    depth = np.asarray(depth)
    poses = np.asarray(poses, dtype=np.float64)
    if depth.ndim != 3 or poses.shape != (len(depth), 4, 4):
        raise ValueError(f"need depth (N,H,W) and poses (N,4,4) of the same N, got {depth.shape} and {poses.shape}")
    out = np.zeros(len(depth), dtype=np.float64)
    for i in range(len(depth)):
        fin = np.isfinite(depth[i]) & (depth[i] > 0)
        n = int(fin.sum())
        if n == 0:
            continue
        mask, _, _ = covisibility(K, depth[i], poses[i], depth[0], poses[0], rel_tol=rel_tol)
        out[i] = float(mask.sum()) / n
    return out


def first_view_segments(fraction: np.ndarray, delta: int, min_fraction: float = FIRST_VIEW_MIN) -> np.ndarray:
    """(N - delta,) bool: segment (i, i + delta) lies in the first view (module docstring)."""
    ok = np.asarray(fraction, dtype=np.float64) >= float(min_fraction)
    n = len(ok)
    if delta < 1 or n <= delta:
        return np.zeros(max(0, n - max(delta, 1)), dtype=bool)
    # all frames i..i+delta ok <=> no "not ok" frame in the window (prefix sums)
    bad = np.concatenate([[0], np.cumsum(~ok)])
    return (bad[delta + 1:] - bad[: n - delta]) == 0


def segment_frames(seg_mask: np.ndarray, delta: int) -> np.ndarray:
    """(N,) bool, N = len(seg_mask) + delta: the frames of the selected segments (i .. i + delta)."""
    seg_mask = np.asarray(seg_mask, dtype=bool)
    n = len(seg_mask) + int(delta)
    cover = np.zeros(n + 1, dtype=np.int64)
    idx = np.nonzero(seg_mask)[0]
    np.add.at(cover, idx, 1)
    np.add.at(cover, idx + delta + 1, -1)
    return np.cumsum(cover)[:n] > 0


def first_view_rpe(ref_poses: np.ndarray, est_poses: np.ndarray, fps: float, seg_mask: np.ndarray,
                   delta: int, gamma=None, est_metric: bool = False) -> tuple[float, float]:
    """(RPE-trans m, RPE-rot deg) RMSE over the first-view segments ``seg_mask`` (delta ``delta``
    frames, from ``first_view_segments``), Sim(3) fitted on their frames only; NaNs when none."""
    seg_mask = np.asarray(seg_mask, dtype=bool)
    if not seg_mask.any():
        return float("nan"), float("nan")
    rr = compute_rpe(ref_poses, est_poses, fps, gamma=gamma, est_metric=est_metric,
                     align_mask=segment_frames(seg_mask, delta))
    if rr.delta_frames != delta:
        raise ValueError(f"segment mask was built for delta {delta}, the RPE uses {rr.delta_frames}")
    return rr.on_segments(seg_mask)


def first_view_scores(fraction: np.ndarray, ref_poses: np.ndarray, est_poses: np.ndarray, fps: float,
                      delta: int, gamma=None, est_metric: bool = False) -> dict[str, float]:
    """The scoring metrics from a task's per-frame first-view ``fraction``: ``rpe_trans@first_view``,
    ``rpe_rot_deg@first_view`` (:func:`first_view_rpe`) and ``first_view_seg_frac`` (share of the
    delta-frame segments that lie in the first view)."""
    mask = first_view_segments(fraction, delta)
    tr, rot = first_view_rpe(ref_poses, est_poses, fps, mask, delta, gamma=gamma, est_metric=est_metric)
    return {"rpe_trans@first_view": tr, "rpe_rot_deg@first_view": rot,
            "first_view_seg_frac": float(mask.mean()) if mask.size else float("nan")}
