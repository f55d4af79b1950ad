"""Scoring jobs of a benchmark run: one (model, task) rollout, or the ground truth, through
:func:`benchmark.scoring.score_task`.

A job returns ``(metrics, curves, est_poses)``: the task score's numeric metrics as floats, its
time curves as arrays and the aligned estimated poses (float64, None without them). ``frames=None``
scores the task's ground-truth frames (the estimator's noise floor).

The same job runs in the harness's process (:func:`score_job`), in the harness's process pool and
on Ray scoring actors (:func:`worker_init` once per worker: torch with one thread, the suite
loaded from disk; then :func:`worker_score` per job, frames read from the file the harness saved).
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.scoring import score_task
from benchmark.tasks.io import load_suite
from benchmark.tasks.task import Task


def metrics_of(score) -> dict:
    """The numeric metrics of a task score (or a plain mapping) as {name: float}."""
    m = getattr(score, "metrics", score)
    return {str(k): float(v) for k, v in dict(m).items() if _is_number(v)}


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def score_job(task: Task, frames: np.ndarray | None, estimator: str, est_trajectory, lpips: bool):
    """Score one (model, task) rollout; ``frames=None`` scores the ground truth (noise floor).

    Returns (metrics, curves, est_poses)."""
    frames = task.gt_frames() if frames is None else frames
    sc = score_task(task, frames, estimator=estimator, est_trajectory=est_trajectory, lpips=lpips)
    curves = {k: np.asarray(v) for k, v in (getattr(sc, "curves", None) or {}).items()}
    est = getattr(sc, "est_poses", None)
    return metrics_of(sc), curves, (None if est is None else np.asarray(est, dtype=np.float64))


_WORKER_TASKS: dict = {}


def worker_init(suite_root: str) -> None:
    """Set up a scoring worker: one torch thread (one scoring process per core), the suite loaded."""
    torch.set_num_threads(1)  # one scoring process per core
    _WORKER_TASKS["suite"] = load_suite(suite_root)


def worker_score(task_id: str, frames_path: str | None, estimator: str, est_trajectory, lpips: bool):
    """:func:`score_job` in a worker set up by :func:`worker_init`; frames read from ``frames_path``
    (None: the ground truth)."""
    task = _WORKER_TASKS["suite"].task(task_id)
    frames = None if frames_path is None else np.load(frames_path)
    try:
        return score_job(task, frames, estimator, est_trajectory, lpips)
    finally:  # a worker meets every task: caching them all would hold the whole suite (GBs)
        task.release()


class torch_threads:
    """Context manager: torch intra-op threads = n inside, restored after (small images score
    faster single-threaded; the harness scores with n = 1)."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.prev = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.prev)
