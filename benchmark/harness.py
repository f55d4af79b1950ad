"""Run world models on a task suite, time them, score them, and write every artefact of a run.

For each model and task the harness binds the task (privileged baselines only), resets the model
with frame 0, the prompt and K, then steps it chunk by chunk with the task's actions
(``model.chunk_size`` actions per call, the last chunk shorter) and times every ``step`` call with
``time.perf_counter``. Speed metrics (per task):

``fps``                   generated frames / total wall seconds spent inside ``step`` (reset excluded)
``chunk_latency_ms``      median (p50) wall milliseconds of one ``step`` call
``chunk_latency_p95_ms``  95th percentile of the same (numpy 'linear' percentile)

Models whose speed is unknown (``measures_speed = False``, e.g. video folders) get no speed rows.
The frames (frame 0 prepended) are scored with :func:`benchmark.scoring.score_task`, with the
estimator's noise floor for the task (:func:`benchmark.scoring.estimate_noise_floor`, computed once
per task on the ground-truth frames and reported as model ``estimator-noise-floor``).

Run directory (``OUT``)::

    results.csv, results.parquet   tidy table: model, task, family, metric, value
    run.json                        suite, models, failures, wall times, versions
    curves/<model>/<task>.npz       TaskScore.curves (metric-vs-time arrays)
    trajectories/<model>/<task>.npz est_poses (aligned estimate) and commanded (GT) poses
    strips/<model>/<task>.png       revisit strip: GT(later) | model(earlier) | model(later)
    leaderboard.md, report.html     written by benchmark.leaderboard / benchmark.report_html
"""
from __future__ import annotations

import json
import os
import platform
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.tasks.task import Task
from benchmark.world_model import WorldModel, check_frames

NOISE_FLOOR_MODEL = "estimator-noise-floor"
RESULT_COLUMNS = ["model", "task", "family", "metric", "value"]


def slug(name: str) -> str:
    """File-system-safe version of a model name ("noisy-oracle:blur=2" -> "noisy-oracle_blur-2")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("=", "-")).strip("_") or "model"


@dataclass
class Rollout:
    """Frames of one model on one task (frame 0 included) and its step timings (seconds)."""

    frames: np.ndarray
    step_seconds: list[float] = field(default_factory=list)
    chunk_sizes: list[int] = field(default_factory=list)
    reset_seconds: float = 0.0

    def speed_metrics(self) -> dict[str, float]:
        total = float(np.sum(self.step_seconds))
        lat = np.asarray(self.step_seconds) * 1000.0
        return {"fps": float(np.sum(self.chunk_sizes)) / total if total > 0 else float("nan"),
                "chunk_latency_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                "chunk_latency_p95_ms": float(np.percentile(lat, 95)) if lat.size else float("nan")}


def rollout(model: WorldModel, task: Task) -> Rollout:
    """Drive ``model`` through ``task`` chunk by chunk; returns all N frames (frame 0 prepended)."""
    n = task.num_frames
    actions = np.asarray(task.actions, dtype=np.float32)[: n - 1]
    first = task.first_frame()
    model.bind_task(task)
    t0 = time.perf_counter()
    model.reset(first, task.prompt, np.asarray(task.K, dtype=np.float64))
    reset_s = time.perf_counter() - t0
    k = max(1, int(getattr(model, "chunk_size", 4) or 4))
    out = [first[None]]
    r = Rollout(frames=np.zeros(0), reset_seconds=reset_s)
    for s in range(0, n - 1, k):
        chunk = actions[s:s + k]
        t0 = time.perf_counter()
        frames = model.step(chunk, float(task.gamma))
        r.step_seconds.append(time.perf_counter() - t0)
        r.chunk_sizes.append(len(chunk))
        out.append(check_frames(frames, len(chunk), task.height, task.width, model.name))
    r.frames = np.concatenate(out, axis=0)
    return r


def revisit_strip(task: Task, frames: np.ndarray) -> np.ndarray | None:
    """(H, 3W+2*gap, 3) uint8: GT(later) | model(earlier) | model(later) for the task's clearest
    revisit pair: highest view overlap (rounded to 0.05), then widest gap; white gaps between
    panels; None without pairs."""
    rv = task.revisits
    if rv is None or len(rv) == 0:
        return None
    rv = rv.assign(_ov=(rv["overlap"] / 0.05).round()).sort_values(["_ov", "gap_s"], ascending=[False, False])
    later, earlier = int(rv.iloc[0]["later"]), int(rv.iloc[0]["earlier"])
    gt = task.gt_frames()[later]
    gap = np.full((task.height, 2, 3), 255, np.uint8)
    return np.concatenate([gt, gap, frames[earlier], gap, frames[later]], axis=1)


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _save_npz(path: Path, **arrays) -> None:
    def w(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    _atomic_write(path, w)


def _save_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    def w(tmp):
        ok, enc = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
        if not ok:
            raise RuntimeError(f"PNG encoding failed for {path}")
        Path(tmp).write_bytes(enc.tobytes())
    _atomic_write(path, w)


def _metrics_of(score) -> dict:
    m = getattr(score, "metrics", score)
    return {str(k): float(v) for k, v in dict(m).items() if _is_number(v)}


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def write_results(df: pd.DataFrame, out_dir: Path) -> None:
    """results.csv and results.parquet (tidy), atomically."""
    out_dir = Path(out_dir)
    _atomic_write(out_dir / "results.csv", lambda tmp: df.to_csv(tmp, index=False))
    _atomic_write(out_dir / "results.parquet", lambda tmp: df.to_parquet(tmp, index=False))


def run_benchmark(model_specs: list[str], tasks: list[Task], out_dir: Path, *, suite_name: str = "?",
                  suite_root: str | None = None, lpips: bool = True, estimator: str = "opencv",
                  trajectories_dir: Path | None = None, models: dict[str, WorldModel] | None = None,
                  progress: bool = True, report: bool = True) -> pd.DataFrame:
    """Run every model on every task, score, and write the run directory (see module doc).

    ``model_specs`` are :func:`benchmark.adapters.make_model` specs; ``models`` may map extra names
    to ready instances (e.g. a VideoFolderModel). A model that cannot be built or fails on a task is
    recorded in ``run.json`` ("failures") with the reason, never given invented numbers.
    ``trajectories_dir``: TUM files ``<dir>/<model slug>/<task>.txt`` or ``<dir>/<task>.txt`` from an
    external pose estimator, used instead of the built-in estimator when present.
    Returns the tidy results DataFrame.
    """
    from tqdm import tqdm

    from benchmark.adapters import make_model
    from benchmark.scoring import estimate_noise_floor, score_task

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rows: list[dict] = []
    failures: list[dict] = []
    model_meta: dict[str, dict] = {}
    floors: dict[str, object] = {}

    def add(model, task, metrics):
        for k, v in metrics.items():
            rows.append({"model": model, "task": task.task_id, "family": task.family, "metric": k, "value": float(v)})

    # the estimator's noise floor: ground-truth frames through the same scorer
    for task in tqdm(tasks, desc="noise floor", disable=not progress):
        floor = estimate_noise_floor(task, estimator=estimator)
        floors[task.task_id] = floor
        add(NOISE_FLOOR_MODEL, task, {k.replace("est_noise_floor_", ""): v for k, v in _metrics_of(floor).items()})

    instances: list[tuple[str, WorldModel | None]] = [(s, None) for s in model_specs]
    instances += list((models or {}).items())
    for spec, inst in instances:
        try:
            model = inst if inst is not None else make_model(spec)
        except Exception as e:  # noqa: BLE001 - recorded, reported, never silently dropped
            failures.append({"model": spec, "task": None, "stage": "build", "error": f"{type(e).__name__}: {e}"})
            print(f"[bench] skipping model {spec}: {e}")
            continue
        name = model.name
        model_meta[name] = model.describe() if hasattr(model, "describe") else {"name": name}
        for task in tqdm(tasks, desc=f"{name}", disable=not progress):
            try:
                r = rollout(model, task)
            except Exception as e:  # noqa: BLE001
                failures.append({"model": name, "task": task.task_id, "stage": "rollout",
                                 "error": f"{type(e).__name__}: {e}",
                                 "traceback": traceback.format_exc(limit=3)})
                print(f"[bench] {name} failed on {task.task_id}: {e}")
                continue
            est = _external_trajectory(trajectories_dir, name, task.task_id)
            score = score_task(task, r.frames, estimator=estimator, est_trajectory=est, lpips=lpips,
                               noise_floor=floors.get(task.task_id))
            metrics = _metrics_of(score)
            if getattr(model, "measures_speed", True):
                metrics.update(r.speed_metrics())
            add(name, task, metrics)
            ms = slug(name)
            curves = {k: np.asarray(v) for k, v in (getattr(score, "curves", None) or {}).items()}
            if curves:
                _save_npz(out_dir / "curves" / ms / f"{task.task_id}.npz", **curves)
            est_poses = getattr(score, "est_poses", None)
            if est_poses is not None:
                _save_npz(out_dir / "trajectories" / ms / f"{task.task_id}.npz",
                          est_poses=np.asarray(est_poses, dtype=np.float64),
                          gt_poses=np.asarray(task.gt_poses, dtype=np.float64))
            strip = revisit_strip(task, r.frames)
            if strip is not None:
                _save_png(out_dir / "strips" / ms / f"{task.task_id}.png", strip)
        model.close()

    df = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    write_results(df, out_dir)
    run_info = {
        "suite": suite_name, "suite_root": str(suite_root) if suite_root else None,
        "tasks": [{"task_id": t.task_id, "family": t.family, "scene_id": t.scene_id, "num_frames": t.num_frames,
                   "fps": t.fps, "width": t.width, "height": t.height} for t in tasks],
        "models": model_meta, "model_specs": list(model_specs) + list((models or {}).keys()),
        "failures": failures, "estimator": estimator, "lpips_requested": bool(lpips),
        "wall_s": round(time.perf_counter() - t_start, 3), "platform": platform.platform(),
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _atomic_write(out_dir / "run.json", lambda tmp: Path(tmp).write_text(json.dumps(run_info, indent=1)))
    if report:
        from benchmark.leaderboard import write_leaderboard
        from benchmark.report_html import write_report

        write_leaderboard(out_dir)
        write_report(out_dir)
    return df


def _external_trajectory(traj_dir: Path | None, model_name: str, task_id: str):
    """Path of an external TUM trajectory for (model, task), or None."""
    if traj_dir is None:
        return None
    for p in (Path(traj_dir) / slug(model_name) / f"{task_id}.txt", Path(traj_dir) / f"{task_id}.txt",
              Path(traj_dir) / f"{task_id}.tum"):
        if p.exists():
            return p
    return None
