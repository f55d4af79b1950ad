"""Score one generated video against one task: action following, memory retrieval, drift.

``score_task(task, frames)`` takes the model's frames INCLUDING frame 0 ((N,H,W,3) uint8, N =
task.num_frames, frame i shown after actions[0..i-1]) and returns a :class:`TaskScore` whose
``metrics`` is a flat {name: float} dict (NaN when a metric cannot be computed; the reason is in
``notes``). Definitions live in the metric modules; the names:

Action following (scoring protocol 3, benchmark.metrics.action_following; poses from
benchmark.pose_estimation, metric via the reference depth at keyframes, so no Sim(3) alignment)
    rpe_trans_rel                     headline translation: mean over 1-s segments that clearly
                                      translate of |translation error| / commanded length (static = 1)
    rpe_trans                         the same segments, metres
    rpe_rot_deg                       mean rotation error over all 1-s segments, degrees
    rpe_rot_rel                       rotation error / commanded angle on rotating segments
    spurious_trans                    translation shown on rotation-only segments, m/s
    n_seg_trans, n_seg_rot, n_seg_rotonly, n_seg   segment counts (NaN metrics where a kind is absent)
    pose_est_failed_frac              fraction of frame steps where the estimator failed (pose held)
    est_noise_floor_<metric>          the estimator's own value on the ground-truth video (only when
                                      the caller passes ``noise_floor``, see estimate_noise_floor)
Memory (benchmark.metrics.retrieval; revisit pairs that pass the re-observation gate)
    revisit_consistency_gain          self-consistency headline (dB; static ~0), with its n:
                                      revisit_gain_pairs, revisit_gain_controls
    revisit_{psnr,ssim,lpips}_{gt,gt_covis,self_covis}, the secondary raw revisit_*_self and the
    ground-truth references revisit_*_{self_gtref,self_covis_gtref},
    revisit_{psnr,ssim,lpips}_{gt,self}@{gap<5s,5-15s,>15s}, revisit_covis_frac,
    revisit_pairs_annotated, revisit_pairs_reobserved, revisit_pairs
Per-frame fidelity and drift (benchmark.metrics.image_quality / noref / drift), frames 1..N-1
    frames_psnr_gt, frames_ssim_gt, frames_lpips_gt   means over generated frames
    drift_{psnr,ssim,lpips}_{slope,ratio}             windowed full-reference curves vs GT
    drift_{psnr,ssim,lpips}_late                      mean over the last quarter of the generated
                                                      frames (drift_psnr_late: long-horizon headline)
    drift_{sharpness,luma_mean,luma_std,colourfulness,saturation}_{slope,ratio}
                                                      no-reference curves of the generated video
``curves`` holds the windowed curves ("t_s" window times; "psnr", "ssim", "lpips", the no-reference
stats, and "gt_<stat>" for the ground truth), ``est_poses`` the Sim(3)-aligned estimated trajectory.
LPIPS is NaN everywhere (and ``lpips_status`` / notes say why) when its backbone weights are not
cached locally.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np
import pandas as pd

from benchmark.metrics import drift as drift_m
from benchmark.metrics import image_quality as iq
from benchmark.metrics import noref
from benchmark.metrics.action_following import METRIC_KEYS as AF_KEYS
from benchmark.metrics.action_following import score_action_following
from benchmark.metrics.observability import observable_frames
from benchmark.metrics.retrieval import score_revisits
from benchmark.pose_estimation.registry import run_estimator
from benchmark.pose_estimation.tum import trajectory_for_frames

DEFAULT_ESTIMATOR = "direct"
# the estimator's own values on the ground-truth video, reported beside every model's
NOISE_FLOOR_KEYS = tuple(f"est_noise_floor_{k}" for k in AF_KEYS if not k.startswith("n_seg"))
NOISE_FLOOR_KEYS_FV: tuple = ()  # protocol 1's first-view floor keys (gone in protocol 2)


def _origin_aligned(gt_poses: np.ndarray, est_poses: np.ndarray, scale: float) -> np.ndarray:
    """The estimate in the ground truth's world for plots: frame 0 put on the first GT pose, its
    translations multiplied by the action-following scale (1 for a metric estimate)."""
    est = np.asarray(est_poses, dtype=np.float64).copy()
    s = scale if np.isfinite(scale) else 1.0
    est[:, :3, 3] *= s
    rel = np.einsum("ij,njk->nik", np.linalg.inv(est[0]), est)
    return np.einsum("ij,njk->nik", np.asarray(gt_poses, dtype=np.float64)[0], rel)


@dataclass
class TaskScore:
    task_id: str
    metrics: dict[str, float]
    curves: dict[str, np.ndarray]
    est_poses: Optional[np.ndarray]
    notes: list[str] = field(default_factory=list)
    revisit_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    step_kind: list[str] = field(default_factory=list)
    lpips_status: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)

    def tidy(self, model: str) -> pd.DataFrame:
        """Rows (model, task, metric, value) for a results table."""
        return pd.DataFrame({"model": model, "task": self.task_id, "metric": list(self.metrics),
                             "value": [float(v) for v in self.metrics.values()]})


_GT_CACHE: dict[tuple[str, str], tuple[np.ndarray, object]] = {}


def _gt_cached(kind: str, task_id: str, gt: np.ndarray, compute: Callable[[], object]):
    """``compute()`` of a task's GT video, cached per ``kind`` while the same array object is scored
    again (every model of a task, and its noise floor, reuse it)."""
    hit = _GT_CACHE.get((kind, task_id))
    if hit is not None and hit[0] is gt:
        return hit[1]
    value = compute()
    if len(_GT_CACHE) >= 16:
        _GT_CACHE.pop(next(iter(_GT_CACHE)))
    _GT_CACHE[(kind, task_id)] = (gt, value)
    return value


def _gt_noref_stats(task_id: str, gt: np.ndarray, workers: int = 1) -> dict:
    """No-reference stats of a task's GT video (cached)."""
    return _gt_cached("noref", task_id, gt, lambda: noref.video_stats(gt, workers=workers))


def _gt_observable(task_id: str, gt: np.ndarray) -> np.ndarray:
    """Which GT frames show enough texture for motion to be observable (cached)."""
    return _gt_cached("observable", task_id, gt, lambda: observable_frames(gt))


def _check_frames(task, frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    want = (task.num_frames, task.height, task.width, 3)
    if frames.dtype != np.uint8 or frames.shape != want:
        hint = " (frame 0, the given first frame, must be included)" if frames.ndim == 4 and \
            frames.shape[0] == task.num_frames - 1 else ""
        raise ValueError(f"task {task.task_id}: frames must be uint8 {want}, got {frames.dtype} {frames.shape}{hint}")
    return frames


def _reference_depth(task) -> Optional[np.ndarray]:
    """The ground-truth planar depth (metres) of every frame at its commanded pose, (N,H,W): frame 0's
    is the estimator's metric anchor (frame 0 is the given first frame, identical for every model);
    the default estimator also takes each keyframe's depth from it (the frame nearest the keyframe's
    estimated pose, with the commanded poses ``task.gt_poses``), while every motion is still solved
    from the scored video's pixels (benchmark/README.md, "Pose estimation"). None when the task has
    no depth attached."""
    try:
        return task.gt_depth()
    except RuntimeError:
        return None


def _run_on_task(estimator, task, frames):
    d = _reference_depth(task)
    return run_estimator(estimator, frames, task.K, depth0=None if d is None else d[0], depth_ref=d,
                         ref_poses=None if d is None else task.gt_poses)


def _estimate(task, frames, estimator, est_trajectory, notes) -> tuple[Optional[np.ndarray], list[str], bool]:
    """(c2w poses, step kinds, metric) where ``metric`` says the translations are in metres."""
    if est_trajectory is not None:
        if isinstance(est_trajectory, (str, bytes)) or hasattr(est_trajectory, "__fspath__"):
            poses = trajectory_for_frames(str(est_trajectory), task.num_frames, task.fps)
        else:
            poses = np.asarray(est_trajectory, dtype=np.float64)
        if poses.shape != (task.num_frames, 4, 4):
            raise ValueError(f"task {task.task_id}: est_trajectory must be ({task.num_frames},4,4), got {poses.shape}")
        notes.append("trajectory from an external estimator")
        return poses, [], False
    res = _run_on_task(estimator, task, frames)
    notes.extend(res.notes)
    return res.poses, res.step_kind, bool(res.metric)


def score_task(task, frames: np.ndarray, *, estimator: Union[str, Callable] = DEFAULT_ESTIMATOR,
               est_trajectory: Union[np.ndarray, str, None] = None, lpips: bool = True,
               noise_floor: Optional[dict] = None, window_s: float = 1.0,
               max_revisit_pairs: Optional[int] = 24, lpips_net: str = "alex",
               workers: Optional[int] = None) -> TaskScore:
    """Score ``frames`` (incl. frame 0) of one task; see the module docstring for metric names.

    estimator: registered name or callable (ignored when ``est_trajectory`` is given: an (N,4,4)
    c2w array or a TUM file path from an external estimator). lpips=False skips LPIPS (NaN).
    noise_floor: estimate_noise_floor(task) output, copied into the metrics. window_s: drift window.
    max_revisit_pairs: cap on scored revisit pairs (evenly spaced). workers: CPU threads for the
    image metrics (default min(4, cpu_count)); the pose estimator runs in its own thread.
    """
    frames = _check_frames(task, frames)
    gt = task.gt_frames()
    notes: list[str] = []
    timings: dict[str, float] = {}
    metrics: dict[str, float] = {}
    curves: dict[str, np.ndarray] = {}
    lp = iq.get_lpips(lpips_net) if lpips else None
    if lp is None:
        lpips_status = "disabled (lpips=False)"
    else:
        lpips_status = lp.status
    if lp is None or not lp.available:
        notes.append(f"LPIPS metrics are NaN: {lpips_status}")

    # ---- action following: the pose estimator runs in a background thread (OpenCV releases the
    # GIL) while the image metrics are computed
    workers = max(1, int(workers if workers is not None else min(4, os.cpu_count() or 1)))
    pose_out: dict = {}

    def _pose_job():
        t = time.perf_counter()
        try:
            pose_out["value"] = _estimate(task, frames, estimator, est_trajectory, pose_notes)
        except BaseException as e:  # re-raised in the caller's thread
            pose_out["error"] = e
        pose_out["seconds"] = time.perf_counter() - t

    pose_notes: list[str] = []
    pose_thread = threading.Thread(target=_pose_job, name="pose-estimation", daemon=True)
    pose_thread.start()

    # ---- per-frame full-reference metrics (frames 1..N-1 for means and drift)
    t0 = time.perf_counter()
    per = {"psnr": iq.psnr(frames, gt), "ssim": iq.ssim(frames, gt, workers=workers)}
    timings["psnr_ssim"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    per["lpips"] = lp(frames, gt) if (lp is not None and lp.available) else np.full(len(frames), np.nan)
    timings["lpips"] = time.perf_counter() - t0
    for k in ("psnr", "ssim", "lpips"):
        metrics[f"frames_{k}_gt"] = iq.mean_or_nan(per[k][1:])

    t0 = time.perf_counter()
    pose_thread.join()
    timings["pose_wait"] = time.perf_counter() - t0
    timings["pose_estimation"] = pose_out.get("seconds", float("nan"))
    if "error" in pose_out:
        raise pose_out["error"]
    est_poses, step_kind, est_metric = pose_out["value"]
    notes.extend(pose_notes)
    t0 = time.perf_counter()
    af = score_action_following(task.gt_poses, est_poses, task.fps, est_metric=est_metric,
                                observable=_gt_observable(task.task_id, gt))
    metrics.update(af.metrics)
    notes.extend(af.notes)
    metrics["pose_est_failed_frac"] = (float(np.mean([k == "failed" for k in step_kind]))
                                       if step_kind else float("nan"))
    if noise_floor:
        for key in NOISE_FLOOR_KEYS:
            metrics[key] = float(noise_floor.get(key, noise_floor.get(key.replace("est_noise_floor_", ""), float("nan"))))
    timings["rpe"] = time.perf_counter() - t0

    # ---- memory retrieval
    t0 = time.perf_counter()
    if task.revisits is None or len(task.revisits) == 0:
        notes.append("task has no revisit pairs: revisit metrics are NaN")
        table = pd.DataFrame()
        rv, _ = score_revisits(frames, gt, np.zeros((0,)), task.gt_poses, task.K,
                               pd.DataFrame(columns=["later", "earlier", "gap_s"]), per, None)
    else:
        rv, table = score_revisits(frames, gt, task.gt_depth(), task.gt_poses, task.K, task.revisits, per,
                                   lp, max_pairs=max_revisit_pairs)
        if max_revisit_pairs is not None and len(task.revisits) > max_revisit_pairs:
            notes.append(f"scored {len(table)} of {len(task.revisits)} revisit pairs (evenly spaced)")
    metrics.update(rv)
    timings["revisits"] = time.perf_counter() - t0

    # ---- drift curves
    t0 = time.perf_counter()
    gen_stats = noref.video_stats(frames, workers=workers)
    gt_stats = _gt_noref_stats(task.task_id, gt, workers)
    per_frame = dict(per)
    per_frame.update(gen_stats)
    per_frame.update({f"gt_{k}": v for k, v in gt_stats.items()})
    t_s, cur = drift_m.window_curves(per_frame, task.fps, window_s)
    curves["t_s"] = t_s
    curves.update(cur)
    for k in ("psnr", "ssim", "lpips", *noref.NOREF_STATS):
        s, r = drift_m.slope_and_ratio(t_s, cur[k])
        metrics[f"drift_{k}_slope"], metrics[f"drift_{k}_ratio"] = s, r
    for k in ("psnr", "ssim", "lpips"):
        metrics[f"drift_{k}_late"] = drift_m.late_mean(per_frame[k])
    timings["drift"] = time.perf_counter() - t0

    return TaskScore(task_id=task.task_id, metrics=metrics, curves=curves,
                     est_poses=_origin_aligned(task.gt_poses, est_poses, af.scale),
                     notes=notes, revisit_table=table, step_kind=step_kind, lpips_status=lpips_status,
                     timings_s=timings)


def estimate_noise_floor(task, estimator: Union[str, Callable] = DEFAULT_ESTIMATOR) -> dict[str, float]:
    """The estimator's own error: its action-following metrics on the GROUND-TRUTH video of ``task``.

    Returns {"est_noise_floor_<metric>": value} for every key of NOISE_FLOOR_KEYS, ready to pass to
    score_task(noise_floor=...). A model within this floor is indistinguishable from perfect action
    following by this estimator.
    """
    gt = task.gt_frames()
    res = _run_on_task(estimator, task, gt)
    af = score_action_following(task.gt_poses, res.poses, task.fps, est_metric=bool(res.metric),
                                observable=_gt_observable(task.task_id, gt))
    return {key: float(af.metrics[key.replace("est_noise_floor_", "")]) for key in NOISE_FLOOR_KEYS}
