"""Action following per segment type (scoring protocols 2-4, benchmark.protocol).

Does the video move the way it was told? Scored on the relative camera motion over 1-s segments,
separately for translation and rotation and per kind of commanded motion (MIND-style breakdown),
so that what a video does wrong is measured where it happens and a video that does nothing never
wins.

Inputs: the commanded trajectory Q (N,4,4 camera-to-world, metres; in the suites it is the ground
truth, whose action labels the model was given), the estimated trajectory P (N,4,4 camera-to-world
from a pose estimator, any world frame), the frame rate fps.

Segments. Every overlapping segment (i, i+d), i = 0 .. N-d-1, d = round(fps) frames (1 s; the whole
video when shorter). Commanded relative motion G_i = Q_i^-1 Q_{i+d} (rotation A_i = angle(G_i) in
degrees, translation t_i = trans(G_i) in frame i's camera axes, length L_i = |t_i|); estimated
relative motion E_i = P_i^-1 P_{i+d}, its translation multiplied by the scale s (below). Kinds,
decided by the command only (so they are the same for every model of a task):

- translating: L_i >= ``TRANS_MIN_M`` (0.1 m per segment);
- rotating: A_i >= ``ROT_MIN_DEG`` (5 deg per segment);
- rotation-only: rotating and L_i < ``STILL_MAX_M`` (0.02 m per segment).

Blank segments (protocol 4). With ``observable`` (N,) bool per frame, decided from the GROUND-TRUTH
frames by benchmark.metrics.observability (a blank view, e.g. 30 cm from an untextured facade, shows
no motion at all), a segment with an unobservable frame in i..i+d is scored by no metric and counted
in ``n_seg_blank``; the kinds and every mean below use the observable segments only.

Per-segment errors are those of evo's RPE (E_err = G_i^-1 E_i): translation error e_i = |trans(E_err)|
= |R_i^T (t_est - t_i)| = |t_est - t_i| (metres), rotation error r_i = angle(E_err) (degrees).

Metrics (means over the segments of their kind; NaN when the task has none, never 0):

- ``rpe_trans_rel``: mean over translating segments of e_i / L_i (dimensionless). A video that
  does not move scores exactly 1 (t_est = 0), a perfect one 0, one that moves backwards 2.
  The headline translation metric. A segment's ratio counts at most ``REL_CAP`` (10), so that one
  wild estimate (a cut, a shuffled video) cannot outweigh every other segment.
- ``rpe_trans``: mean over translating segments of e_i (m), beside it.
- ``rpe_rot_deg``: mean over ALL segments of r_i (degrees); a static video scores the mean
  commanded rotation angle.
- ``rpe_rot_rel``: mean over rotating segments of r_i / A_i (each capped at ``REL_CAP``).
- ``spurious_trans``: mean over rotation-only segments of |t_est| / (d / fps) (m/s): translation
  the video shows while the camera only turns (invented parallax during a pan).
- ``n_seg_trans``, ``n_seg_rot``, ``n_seg_rotonly``, ``n_seg``: segment counts (scored segments);
  ``n_seg_blank``: segments left out as blank.

Scale s. A METRIC estimate (the built-in estimators anchored by frame 0's ground-truth depth, whose
translations are in metres) is scored as it is, s = 1: relative motion needs no alignment, so there
is no Sim(3) here, no degenerate case and no scale limit. An estimate of unknown scale (external
TUM trajectories, unanchored estimators) gets the least-squares non-negative scale over the
translating segments, s = max(0, sum_i t_est_i . t_i / sum_i |t_est_i|^2) (the scale that best
matches its relative translations to the command; s = 0 when they point backwards, i.e. it then
scores like a static video). Degenerate-reference rule: when the task has no translating segment,
no scale can be fitted for such an estimate and its ``spurious_trans`` is NaN (noted); with no
estimated translation at all s = 1. With s = 1 every per-segment error equals ``evo_rpe tum Q P
--delta d --delta_unit f --all_pairs`` without alignment (translation_part / angle_deg; tested).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TRANS_MIN_M = 0.1    # a segment translates when the command moves >= 0.1 m over it
ROT_MIN_DEG = 5.0    # a segment rotates when the command turns >= 5 deg over it
STILL_MAX_M = 0.02   # a rotating segment is rotation-only when the command moves < 2 cm over it
REL_CAP = 10.0       # a segment's relative error counts at most 10 (one estimator blow-up cannot rule a mean)

METRIC_KEYS = ("rpe_trans_rel", "rpe_trans", "rpe_rot_deg", "rpe_rot_rel", "spurious_trans",
               "n_seg_trans", "n_seg_rot", "n_seg_rotonly", "n_seg", "n_seg_blank")


def _inv(T: np.ndarray) -> np.ndarray:
    R, t = T[..., :3, :3], T[..., :3, 3]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


def relative_motions(poses: np.ndarray, delta: int) -> np.ndarray:
    """(N-delta, 4, 4): P_i^-1 P_{i+delta} for every i."""
    poses = np.asarray(poses, dtype=np.float64)
    return np.einsum("nij,njk->nik", _inv(poses[:-delta]), poses[delta:])


def rotation_angle_deg(R: np.ndarray) -> np.ndarray:
    """Angle of rotation matrices (..., 3, 3) in degrees (clipped trace formula, like evo's)."""
    c = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def segment_delta(n_frames: int, fps: float) -> int:
    """The segment length in frames: round(fps) (1 s), or the whole video when it is shorter."""
    if n_frames < 2:
        raise ValueError("action following needs at least 2 frames")
    return min(max(1, int(round(float(fps)))), n_frames - 1)


@dataclass
class SegmentKinds:
    """The command's per-segment motion and kinds (the same for every model of a task)."""
    delta: int
    length_m: np.ndarray      # (S,) L_i
    angle_deg: np.ndarray     # (S,) A_i
    translating: np.ndarray   # (S,) bool, scored segments only
    rotating: np.ndarray
    rotation_only: np.ndarray
    scored: np.ndarray = None  # (S,) bool: all frames of the segment observable (default: all)

    def __post_init__(self):
        if self.scored is None:
            self.scored = np.ones(len(self.length_m), dtype=bool)

    def counts(self) -> dict[str, float]:
        return {"n_seg_trans": float(self.translating.sum()), "n_seg_rot": float(self.rotating.sum()),
                "n_seg_rotonly": float(self.rotation_only.sum()), "n_seg": float(self.scored.sum()),
                "n_seg_blank": float((~self.scored).sum())}


def scored_segments(observable: np.ndarray, delta: int) -> np.ndarray:
    """(N-delta,) bool: segment (i, i+delta) has only observable frames."""
    obs = np.asarray(observable, dtype=bool)
    blank = np.concatenate([[0], np.cumsum(~obs)])
    return (blank[delta + 1:] - blank[:len(obs) - delta]) == 0


def segment_kinds(ref_poses: np.ndarray, fps: float, observable: np.ndarray | None = None) -> SegmentKinds:
    ref_poses = np.asarray(ref_poses, dtype=np.float64)
    d = segment_delta(len(ref_poses), fps)
    G = relative_motions(ref_poses, d)
    L = np.linalg.norm(G[:, :3, 3], axis=1)
    A = rotation_angle_deg(G[:, :3, :3])
    if observable is None:
        ok = np.ones(len(L), dtype=bool)
    else:
        if np.shape(observable) != (len(ref_poses),):
            raise ValueError(f"observable must be ({len(ref_poses)},) per frame, got {np.shape(observable)}")
        ok = scored_segments(observable, d)
    rot = (A >= ROT_MIN_DEG) & ok
    return SegmentKinds(delta=d, length_m=L, angle_deg=A, translating=(L >= TRANS_MIN_M) & ok, rotating=rot,
                        rotation_only=rot & (L < STILL_MAX_M), scored=ok)


@dataclass
class ActionFollowing:
    metrics: dict[str, float]
    kinds: SegmentKinds
    scale: float
    trans_err_m: np.ndarray        # (S,) e_i
    rot_err_deg: np.ndarray        # (S,) r_i
    est_trans_m: np.ndarray        # (S,) |t_est| after scaling
    notes: list[str] = field(default_factory=list)


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else float("nan")


def score_action_following(ref_poses: np.ndarray, est_poses: np.ndarray, fps: float,
                           est_metric: bool = True, observable: np.ndarray | None = None) -> ActionFollowing:
    """Per-segment action-following metrics of ``est_poses`` against ``ref_poses`` (module docstring);
    ``observable``: (N,) bool per ground-truth frame (benchmark.metrics.observability), None = all."""
    ref_poses = np.asarray(ref_poses, dtype=np.float64)
    est_poses = np.asarray(est_poses, dtype=np.float64)
    if ref_poses.ndim != 3 or ref_poses.shape[1:] != (4, 4):
        raise ValueError(f"reference poses must be (N,4,4) camera-to-world matrices, got {ref_poses.shape}")
    if est_poses.shape != ref_poses.shape:
        raise ValueError(f"reference {ref_poses.shape} and estimate {est_poses.shape} differ in shape")
    if not np.all(np.isfinite(est_poses)):
        raise ValueError("estimated poses contain NaN or inf")
    kinds = segment_kinds(ref_poses, fps, observable)
    d = kinds.delta
    G = relative_motions(ref_poses, d)
    E = relative_motions(est_poses, d)
    t_cmd, t_est = G[:, :3, 3], E[:, :3, 3]
    notes: list[str] = []
    scale = 1.0
    if not est_metric:
        sel = kinds.translating
        den = float(np.sum(t_est[sel] ** 2)) if sel.any() else 0.0
        if not sel.any():
            scale = float("nan")
            notes.append("estimate of unknown scale and no translating segment in the command: no scale "
                         "can be fitted, spurious_trans is NaN")
        elif den > 0.0:
            scale = max(0.0, float(np.sum(t_est[sel] * t_cmd[sel])) / den)
            notes.append(f"estimate of unknown scale: least-squares segment scale s={scale:.4g}")
    t_scaled = t_est * (scale if np.isfinite(scale) else 1.0)
    e = np.linalg.norm(t_scaled - t_cmd, axis=1)
    R_err = np.einsum("nji,njk->nik", G[:, :3, :3], E[:, :3, :3])
    r = rotation_angle_deg(R_err)
    est_len = np.linalg.norm(t_scaled, axis=1)
    tr, ro, rr = kinds.translating, kinds.rotation_only, kinds.rotating
    seconds = d / float(fps)
    m = {
        "rpe_trans_rel": _mean(np.minimum(e[tr] / kinds.length_m[tr], REL_CAP)),
        "rpe_trans": _mean(e[tr]),
        "rpe_rot_deg": _mean(r[kinds.scored]),
        "rpe_rot_rel": _mean(np.minimum(r[rr] / kinds.angle_deg[rr], REL_CAP)),
        "spurious_trans": _mean(est_len[ro]) / seconds if np.isfinite(scale) else float("nan"),
    }
    m.update(kinds.counts())
    return ActionFollowing(metrics=m, kinds=kinds, scale=scale, trans_err_m=e, rot_err_deg=r,
                           est_trans_m=est_len, notes=notes)
