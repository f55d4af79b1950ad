"""Run world models on a task suite, time them, score them, and write every artefact of a run.

For each model and task the harness binds the task (privileged baselines only), resets the model
with frame 0, the prompt and K, then steps it chunk by chunk with the task's actions
(``model.chunk_size`` actions per call, the last chunk shorter) and times every ``step`` call with
``time.perf_counter``. Speed metrics (per task):

``fps``                   generated frames / total wall seconds spent inside ``step`` (reset excluded)
``chunk_latency_ms``      median (p50) wall milliseconds of one ``step`` call
``chunk_latency_p95_ms``  95th percentile of the same (numpy 'linear' percentile)

Models whose speed is unknown (``measures_speed = False``, e.g. video folders) get no speed rows.
A model may declare a task outside its action space (``WorldModel.out_of_action_space(task)``
returns the reason): the task is not rolled out for it, and run.json records it under
``not_applicable`` (model, task, reason), so leaderboards report it as n/a instead of missing.
The frames (frame 0 prepended) are scored with :func:`benchmark.scoring.score_task`. The
estimator's noise floor of a task (its action-following scores on the ground-truth frames, as
:func:`benchmark.scoring.estimate_noise_floor` defines it) is added to every model's rows
(``est_noise_floor_<metric>``, e.g. ``est_noise_floor_rpe_trans_rel``) and reported as the
pseudo-model ``estimator-noise-floor`` (metrics ``rpe_trans_rel``, ``rpe_rot_deg``, ...).

Run directory (``OUT``)::

    results.csv, results.parquet   tidy table: model, task, family, metric, value, protocol
    run.json                        suite, models, failures, not_applicable, protocol, wall times, versions
    curves/<model>/<task>.npz       TaskScore.curves (metric-vs-time arrays)
    trajectories/<model>/<task>.npz est_poses (aligned estimate) and commanded (GT) poses
    strips/<model>/<task>.png       revisit strip: GT(later) | model(earlier) | model(later)
    leaderboard.md, report.html     written by benchmark.leaderboard / benchmark.report_html
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import pickle
import platform
import shutil
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmark.adapters import make_model
from benchmark.leaderboard import write_leaderboard
from benchmark.metrics.image_quality import lpips_weights_path
from benchmark.naming import NOISE_FLOOR_MODEL, RESULT_COLUMNS, slug
from benchmark.protocol import PROTOCOL_VERSION
from benchmark.ray_engine import RayEngine
from benchmark.report_html import write_report
from benchmark.rollout import rollout
from benchmark.score_jobs import score_job, torch_threads, worker_init, worker_score
from benchmark.scoring import NOISE_FLOOR_KEYS, NOISE_FLOOR_KEYS_FV
from benchmark.tasks.io import read_manifest, suite_content_hash
from benchmark.tasks.task import Task
from benchmark.world_model import WorldModel
from datagen.atomic import atomic_write

FLOOR_KEYS = NOISE_FLOOR_KEYS + NOISE_FLOOR_KEYS_FV  # est_noise_floor_<the oracle's metric>
FLOOR_METRICS = [k.replace("est_noise_floor_", "") for k in FLOOR_KEYS]


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


def _save_npz(path: Path, **arrays) -> None:
    def w(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    atomic_write(path, w)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    def w(tmp):
        with open(tmp, "wb") as f:
            np.save(f, arr)
    atomic_write(path, w)


def _save_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    def w(tmp):
        ok, enc = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
        if not ok:
            raise RuntimeError(f"PNG encoding failed for {path}")
        Path(tmp).write_bytes(enc.tobytes())
    atomic_write(path, w)


def write_results(df: pd.DataFrame, out_dir: Path) -> None:
    """results.csv and results.parquet (tidy), atomically."""
    out_dir = Path(out_dir)
    atomic_write(out_dir / "results.csv", lambda tmp: df.to_csv(tmp, index=False))
    atomic_write(out_dir / "results.parquet", lambda tmp: df.to_parquet(tmp, index=False))


def _local_rollout(model: WorldModel, task: Task) -> tuple:
    """("ok", Rollout) or ("error", message, traceback): one rollout in this process."""
    try:
        return "ok", rollout(model, task)
    except Exception as e:  # noqa: BLE001 - recorded by the harness, never silently dropped
        return "error", f"{type(e).__name__}: {e}", traceback.format_exc(limit=3)


@dataclass
class RunOptions:
    """How a run is made: :func:`run_benchmark`'s keyword arguments (see its doc)."""

    suite_name: str = "?"
    suite_root: str | None = None
    lpips: bool = True
    estimator: str = "direct"
    trajectories_dir: Path | None = None
    progress: bool = True
    report: bool = True
    workers: int | None = None
    resume: bool = False
    allow_missing: bool = False
    engine: str = "local"
    ray_address: str | None = None
    ray_gpus_per_model: float = 0.0


class Job(NamedTuple):
    """One (model, task) to score: the saved frames (None: the ground truth, i.e. the noise floor),
    an external TUM trajectory (or None) and the rollout's speed metrics."""

    model: str
    task_id: str
    frames_path: str | None
    est_trajectory: object
    speed: dict


class ScoreCache:
    """Scores saved per (model, task) under ``OUT/.scores/<model slug>/<task>.pkl``, each with the
    settings it was computed with (``key``: estimator, LPIPS, LPIPS weights, protocol); a saved score
    is reused only by a resumed run with the same settings."""

    def __init__(self, root: Path, key: dict, resume: bool):
        self.root, self.key, self.resume = root, key, resume

    def path(self, model: str, task_id: str) -> Path:
        return self.root / slug(model) / f"{task_id}.pkl"

    def get(self, model: str, task_id: str):
        """The saved score of (model, task) when it was computed with this run's settings."""
        path = self.path(model, task_id)
        if not (self.resume and path.exists()):
            return None
        saved = pickle.loads(path.read_bytes())
        return saved["result"] if saved.get("key") == self.key else None

    def put(self, model: str, task_id: str, result) -> None:
        path = self.path(model, task_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(pickle.dumps({"key": self.key, "result": result})))


class _Run:
    """The state of one :func:`run_benchmark` call, built up by its steps: the run directory and its
    scratch folders, the Ray engine (if any), and what the run records (rows, failures, n/a tasks,
    model descriptions, timings, resumed work)."""

    def __init__(self, tasks: list[Task], out_dir: Path, opts: RunOptions):
        """Prepare the run directory: check the engine (start Ray), create ``out_dir``, clear the
        scratch folders unless resuming, fix the scoring settings."""
        out_dir = Path(out_dir)
        if opts.engine not in ("local", "ray"):
            raise ValueError(f"engine must be local or ray, got {opts.engine!r}")
        self.ray_engine = None
        if opts.engine == "ray":
            self.ray_engine = RayEngine(opts.suite_root, address=opts.ray_address,
                                        gpus_per_model=opts.ray_gpus_per_model)
            out_dir = out_dir.resolve()  # Ray workers read the saved frames by path
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir, self.opts, self.tasks = out_dir, opts, tasks
        self.scratch = out_dir / ".frames"
        score_cache = out_dir / ".scores"
        if not opts.resume:
            shutil.rmtree(self.scratch, ignore_errors=True)
            shutil.rmtree(score_cache, ignore_errors=True)
        self.lpips_file = lpips_weights_path() if opts.lpips else None
        self.cache = ScoreCache(score_cache, {"estimator": str(opts.estimator), "lpips": bool(opts.lpips),
                                              "lpips_weights": self.lpips_file, "protocol": PROTOCOL_VERSION},
                                opts.resume)
        self.n_resumed = {"rollouts": 0, "scores": 0}
        self.t_start = time.perf_counter()
        self.rows: list[dict] = []
        self.failures: list[dict] = []
        self.not_applicable: list[dict] = []
        self.model_meta: dict[str, dict] = {}
        self.by_id = {t.task_id: t for t in tasks}
        self.timings = {"rollout_s": {}, "scoring_s": 0.0}
        self.scoring_workers: int | str = 1

    def add(self, model: str, task: Task, metrics: dict) -> None:
        """Tidy rows of (model, task): one per metric."""
        for k, v in metrics.items():
            self.rows.append({"model": model, "task": task.task_id, "family": task.family, "metric": k,
                              "value": float(v), "protocol": PROTOCOL_VERSION})

    # ---- phase 1: rollouts (timed, sequential)
    def roll_out(self, instances: list[tuple[str, WorldModel | None]]) -> list[Job]:
        """Roll every model out on every task, one model at a time; returns the scoring jobs."""
        jobs: list[Job] = []
        _check_scratch_space(self.scratch, [slug(getattr(inst, "name", None) or spec) for spec, inst in instances],
                             self.tasks, self.opts.resume)
        for spec, inst in instances:
            self._roll_out_model(spec, inst, jobs)
        return jobs

    def _build_model(self, spec: str, inst: WorldModel | None) -> WorldModel | None:
        """The model of ``spec`` (or the given instance), uniquely named in this run; None (recorded
        as a build failure) when it cannot be built or its spec's name is taken."""
        try:
            model = inst if inst is not None else make_model(spec)
        except Exception as e:  # noqa: BLE001 - recorded, reported, never silently dropped
            self.failures.append({"model": spec, "task": None, "stage": "build", "error": f"{type(e).__name__}: {e}"})
            print(f"[bench] skipping model {spec}: {e}")
            return None
        name = model.name
        if name in self.model_meta:  # e.g. `relic` and `relic:OTHER_CHECKPOINT`: both call themselves "relic"
            if spec in self.model_meta:
                self.failures.append({"model": spec, "task": None, "stage": "build",
                                      "error": f"another model in this run is already named {name!r}"})
                print(f"[bench] skipping model {spec}: another model in this run is already named {name!r}")
                model.close()
                return None
            print(f"[bench] {spec}: the name {name!r} is taken by an earlier model in this run; "
                  f"this one is named by its spec")
            model.name = name = spec
        self.model_meta[name] = model.describe() if hasattr(model, "describe") else {"name": name}
        return model

    def _tasks_to_roll_out(self, model: WorldModel, jobs: list[Job]) -> list[Task]:
        """The tasks ``model`` still has to run: n/a tasks are recorded, and with ``resume`` the
        rollouts already saved become jobs at once."""
        name, todo = model.name, []
        for task in self.tasks:
            reason = model.out_of_action_space(task) if hasattr(model, "out_of_action_space") else None
            if reason:
                self.not_applicable.append({"model": name, "task": task.task_id, "reason": str(reason)})
                continue
            fp = self.scratch / slug(name) / f"{task.task_id}.npy"
            sp = fp.with_suffix(".speed.json")
            if self.opts.resume and sp.exists() and (fp.exists() or self.cache.get(name, task.task_id) is not None):
                jobs.append(Job(name, task.task_id, str(fp),
                                _external_trajectory(self.opts.trajectories_dir, name, task.task_id),
                                json.loads(sp.read_text())))
                self.n_resumed["rollouts"] += 1
                continue
            todo.append(task)
        return todo

    def _roll_out_model(self, spec: str, inst: WorldModel | None, jobs: list[Job]) -> None:
        """Roll one model out on its tasks (here or on Ray actors); save frames, speed and revisit
        strips; append its scoring jobs."""
        model = self._build_model(spec, inst)
        if model is None:
            return
        name = model.name
        t_model = time.perf_counter()
        todo = self._tasks_to_roll_out(model, jobs)
        if self.ray_engine is not None:
            done = ((self.by_id[tid], reply)
                    for tid, reply in self.ray_engine.rollouts(spec, inst, [t.task_id for t in todo]))
        else:
            done = ((task, _local_rollout(model, task)) for task in todo)
        for task, reply in tqdm(done, total=len(todo), desc=f"run {name}", disable=not self.opts.progress):
            if reply[0] != "ok":
                self.failures.append({"model": name, "task": task.task_id, "stage": "rollout", "error": reply[1],
                                      "traceback": reply[2]})
                print(f"[bench] {name} failed on {task.task_id}: {reply[1]}")
                continue
            r = reply[1]
            fp = self.scratch / slug(name) / f"{task.task_id}.npy"
            sp = fp.with_suffix(".speed.json")
            fp.parent.mkdir(parents=True, exist_ok=True)
            _save_npy(fp, r.frames)
            speed = r.speed_metrics() if getattr(model, "measures_speed", True) else {}
            atomic_write(sp, lambda tmp, speed=speed: Path(tmp).write_text(json.dumps(speed)))
            jobs.append(Job(name, task.task_id, str(fp),
                            _external_trajectory(self.opts.trajectories_dir, name, task.task_id), speed))
            strip = revisit_strip(task, r.frames)
            if strip is not None:
                _save_png(self.out_dir / "strips" / slug(name) / f"{task.task_id}.png", strip)
            task.release()  # ground truth read by privileged baselines / strips: not kept for all tasks
        model.close()
        self.timings["rollout_s"][name] = round(time.perf_counter() - t_model, 3)

    # ---- phase 2: scoring
    def oracle_floor_tasks(self, jobs: list[Job]) -> set[str]:
        """Tasks whose noise floor is the oracle's score (its frames are the ground truth and the
        built-in estimator is deterministic)."""
        return {j.task_id for j in jobs if j.model == "oracle" and j.est_trajectory is None}

    def score(self, jobs: list[Job]) -> dict[tuple[str, str], tuple]:
        """Score the noise floor of every task (unless the oracle's score stands in for it) and every
        rollout, reusing saved scores when resuming; returns {(model, task_id): job result}."""
        opts = self.opts
        oracle_ok = self.oracle_floor_tasks(jobs)
        floor_jobs = [Job(NOISE_FLOOR_MODEL, t.task_id, None, None, {}) for t in self.tasks
                      if t.task_id not in oracle_ok]
        all_jobs = floor_jobs + jobs
        workers = opts.workers
        if workers is None:  # processes pay a few seconds of start-up: only for real amounts of work
            n_frames = sum(self.by_id[j.task_id].num_frames for j in all_jobs)
            workers = min(2, os.cpu_count() or 1) if (opts.suite_root and n_frames >= 1500) else 1
        workers = max(1, min(int(workers), len(all_jobs) or 1))
        self.scoring_workers = workers
        t_score = time.perf_counter()
        results: dict[tuple[str, str], tuple] = {}
        frames_of = {(j.model, j.task_id): j.frames_path for j in all_jobs}

        def keep(key, res):
            results[key] = res
            self.cache.put(*key, res)
            if frames_of.get(key):  # scored and saved: the frames are no longer needed
                Path(frames_of[key]).unlink(missing_ok=True)

        if opts.resume:
            for j in all_jobs:
                res = self.cache.get(j.model, j.task_id)
                if res is not None:
                    results[(j.model, j.task_id)] = res
                    self.n_resumed["scores"] += 1
        todo = [j for j in all_jobs if (j.model, j.task_id) not in results]
        if self.ray_engine is not None:
            self._score_on_ray(todo, keep)
        elif workers > 1 and opts.suite_root:
            self._score_in_pool(todo, keep, workers)
        else:
            self._score_here(todo, keep)
        self.timings["scoring_s"] = round(time.perf_counter() - t_score, 3)
        return results

    def _score_failed(self, key: tuple[str, str], e: Exception) -> None:
        self.failures.append({"model": key[0], "task": key[1], "stage": "score", "error": f"{type(e).__name__}: {e}",
                              "traceback": traceback.format_exc(limit=3)})
        print(f"[bench] scoring {key[0]} on {key[1]} failed: {type(e).__name__}: {e}")

    def _score_on_ray(self, todo: list[Job], keep) -> None:
        opts, ray_engine = self.opts, self.ray_engine
        replies = ray_engine.score((j.task_id, j.frames_path, opts.estimator, j.est_trajectory, opts.lpips)
                                   for j in todo)
        for i, reply in tqdm(replies, total=len(todo), desc="score", disable=not opts.progress):
            key = (todo[i].model, todo[i].task_id)
            if reply[0] == "ok":
                keep(key, reply[1])
            else:  # recorded like a local scoring failure; the model is then incomplete
                self.failures.append({"model": key[0], "task": key[1], "stage": "score", "error": reply[1],
                                      "traceback": reply[2]})
                print(f"[bench] scoring {key[0]} on {key[1]} failed: {reply[1]}")
        self.scoring_workers = f"ray ({ray_engine.address or 'local'})"
        self.timings["ray_startup_s"] = round(ray_engine.startup_s(), 3)
        ray_engine.close()

    def _score_in_pool(self, todo: list[Job], keep, workers: int) -> None:
        opts = self.opts
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=worker_init, initargs=(str(opts.suite_root),)) as ex:
            futs = {ex.submit(worker_score, j.task_id, j.frames_path, opts.estimator, j.est_trajectory, opts.lpips):
                    (j.model, j.task_id) for j in todo}
            for f in tqdm(futs, desc="score", disable=not opts.progress):
                try:
                    keep(futs[f], f.result())
                except Exception as e:  # noqa: BLE001 - recorded; the model is then incomplete
                    self._score_failed(futs[f], e)

    def _score_here(self, todo: list[Job], keep) -> None:
        opts = self.opts
        with torch_threads(1):
            for m, tid, fp, est, _ in tqdm(todo, desc="score", disable=not opts.progress):
                try:
                    keep((m, tid), score_job(self.by_id[tid], None if fp is None else np.load(fp), opts.estimator,
                                             est, opts.lpips))
                except Exception as e:  # noqa: BLE001
                    self._score_failed((m, tid), e)
                self.by_id[tid].release()

    # ---- results
    def results_table(self, jobs: list[Job], results: dict[tuple[str, str], tuple]) -> pd.DataFrame:
        """Tidy rows: the noise floor of every task, then every scored job with the floor beside its
        metrics and its speed; writes the curves and trajectories of each job; clears the scratch
        folders."""
        oracle_ok = self.oracle_floor_tasks(jobs)
        floors: dict[str, dict] = {}
        for t in self.tasks:
            src = ("oracle", t.task_id) if t.task_id in oracle_ok else (NOISE_FLOOR_MODEL, t.task_id)
            met = results[src][0] if src in results else {}
            floors[t.task_id] = {k: met.get(k, float("nan")) for k in FLOOR_METRICS}
            self.add(NOISE_FLOOR_MODEL, t, floors[t.task_id])
        for m, tid, fp, est, speed in jobs:
            task = self.by_id[tid]
            if (m, tid) not in results:
                continue  # scoring failed: recorded in failures, the task is missing for this model
            metrics, curves, est_poses = results[(m, tid)]
            metrics = dict(metrics)
            for key, short in zip(FLOOR_KEYS, FLOOR_METRICS):  # the estimator's noise floor beside every result
                metrics[key] = floors[tid][short]
            metrics.update(speed)
            self.add(m, task, metrics)
            if curves:
                _save_npz(self.out_dir / "curves" / slug(m) / f"{tid}.npz", **curves)
            if est_poses is not None:
                _save_npz(self.out_dir / "trajectories" / slug(m) / f"{tid}.npz", est_poses=est_poses,
                          gt_poses=np.asarray(task.gt_poses, dtype=np.float64))
        shutil.rmtree(self.scratch, ignore_errors=True)
        shutil.rmtree(self.cache.root, ignore_errors=True)
        return pd.DataFrame(self.rows, columns=RESULT_COLUMNS)

    def run_info(self, model_specs: list[str]) -> dict:
        """run.json's content."""
        opts, tasks = self.opts, self.tasks
        return {
            "suite": opts.suite_name, "suite_root": str(opts.suite_root) if opts.suite_root else None,
            "tasks": [{"task_id": t.task_id, "family": t.family, "scene_id": t.scene_id, "num_frames": t.num_frames,
                       "fps": t.fps, "width": t.width, "height": t.height} for t in tasks],
            "models": self.model_meta, "model_specs": model_specs,
            "failures": self.failures, "not_applicable": self.not_applicable, "allow_missing": bool(opts.allow_missing),
            "suite_content_sha256": _suite_hash(opts.suite_root),
            "protocol": PROTOCOL_VERSION, "estimator": opts.estimator, "lpips_requested": bool(opts.lpips),
            "lpips_weights": self.lpips_file,
            "timings": self.timings, "scoring_workers": self.scoring_workers, "resumed": self.n_resumed,
            "engine": opts.engine,
            "wall_s": round(time.perf_counter() - self.t_start, 3), "platform": platform.platform(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def run_benchmark(model_specs: list[str], tasks: list[Task], out_dir: Path, *, suite_name: str = "?",
                  suite_root: str | None = None, lpips: bool = True, estimator: str = "direct",
                  trajectories_dir: Path | None = None, models: dict[str, WorldModel] | None = None,
                  progress: bool = True, report: bool = True, workers: int | None = None,
                  resume: bool = False, allow_missing: bool = False, engine: str = "local",
                  ray_address: str | None = None, ray_gpus_per_model: float = 0.0) -> pd.DataFrame:
    """Run every model on every task, score, and write the run directory (see module doc).

    ``model_specs`` are :func:`benchmark.adapters.make_model` specs; ``models`` may map extra names
    to ready instances (e.g. a VideoFolderModel). A model that cannot be built or fails on a task (rollout or scoring) is
    recorded in ``run.json`` ("failures") with the reason, never given invented numbers.
    ``trajectories_dir``: TUM files ``<dir>/<model slug>/<task>.txt`` or ``<dir>/<task>.txt`` from an
    external pose estimator, used instead of the built-in estimator when present.

    Two phases: (1) every model is rolled out on every task, one at a time, with nothing else
    running in this process (so ``fps`` is the model's own speed); the frames go to a scratch folder;
    (2) the rollouts and the ground truth (noise floor) are scored, by ``workers`` processes
    (default: min(2, CPUs) when ``suite_root`` is given and there are >= 1500 frames to score, else
    1, in this process). The noise floor is
    the estimator's RPE on the ground-truth frames; when ``oracle`` is run, its frames are exactly
    the ground truth (tested) and the estimator is deterministic, so its score is reused as the floor.
    ``resume``: an interrupted run in the same ``out_dir`` continues: rollouts whose frames and
    speed were saved (``OUT/.frames``) are not re-run, and scores already computed with the same
    estimator and LPIPS setting (``OUT/.scores``) are not recomputed; both folders are written
    atomically per (model, task) and removed when the run completes. Without ``resume`` they are
    cleared first. A rollout's frames are deleted as soon as its score is saved (its speed file
    stays), so the scratch folder shrinks while scoring; before phase 1 the free disk space is
    checked against the frames still to be written (uint8 RGB, e.g. 3.8 GiB per model for the full
    suite at 224x128) and a run that cannot fit stops at once with the numbers.
    ``allow_missing`` is recorded in run.json: the leaderboard then shows incomplete models' means over
    the tasks they have, labelled (benchmark.leaderboard). Every row carries ``protocol``
    (benchmark.protocol.PROTOCOL_VERSION), as does run.json.
    ``engine="ray"``: both phases run on Ray workers (:mod:`benchmark.ray_engine`; a local Ray
    unless ``ray_address`` names a cluster; ``ray_gpus_per_model`` GPUs per model worker); same
    files and scores, speed measured on the workers.
    Returns the tidy results DataFrame.
    """
    opts = RunOptions(suite_name=suite_name, suite_root=suite_root, lpips=lpips, estimator=estimator,
                      trajectories_dir=trajectories_dir, progress=progress, report=report, workers=workers,
                      resume=resume, allow_missing=allow_missing, engine=engine, ray_address=ray_address,
                      ray_gpus_per_model=ray_gpus_per_model)
    return run_with_options(model_specs, tasks, out_dir, opts, models)


def run_with_options(model_specs: list[str], tasks: list[Task], out_dir: Path, opts: RunOptions,
                     models: dict[str, WorldModel] | None = None) -> pd.DataFrame:
    """:func:`run_benchmark` with its options as a :class:`RunOptions`: prepare the run directory,
    roll out (phase 1), score (phase 2), write the results table and run.json (and the reports)."""
    run = _Run(tasks, out_dir, opts)
    instances: list[tuple[str, WorldModel | None]] = [(s, None) for s in model_specs]
    instances += list((models or {}).items())
    jobs = run.roll_out(instances)
    results = run.score(jobs)
    df = run.results_table(jobs, results)
    write_results(df, run.out_dir)
    write_run_info(run.out_dir, run.run_info(list(model_specs) + list((models or {}).keys())), opts.report)
    return df


def _suite_hash(suite_root) -> str | None:
    """The suite's content hash (benchmark.tasks.io.Suite.content_hash), None for in-memory tasks."""
    if not suite_root:
        return None
    try:
        return suite_content_hash(read_manifest(Path(suite_root)))
    except (OSError, ValueError, KeyError):
        return None


def write_run_info(out_dir: Path, run_info: dict, report: bool = True) -> None:
    """Write ``run.json`` (atomic), then, with ``report``, the leaderboard and the HTML report."""
    atomic_write(Path(out_dir) / "run.json", lambda tmp: Path(tmp).write_text(json.dumps(run_info, indent=1)))
    if report:
        write_leaderboard(out_dir)
        write_report(out_dir)


def _check_scratch_space(scratch: Path, model_slugs: list[str], tasks: list[Task], resume: bool) -> None:
    """Stop before rolling out when the frames still to be saved cannot fit on the disk."""
    need = 0
    for ms in model_slugs:
        for t in tasks:
            if resume and (scratch / ms / f"{t.task_id}.speed.json").exists():
                continue
            need += int(t.num_frames) * int(t.height) * int(t.width) * 3
    probe = scratch
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    margin = 1 << 30
    if need + margin > free:
        raise OSError(f"benchmark run needs {need / 2**30:.1f} GiB of scratch space for rollout frames under "
                      f"{scratch} (+1 GiB margin) but only {free / 2**30:.1f} GiB is free: free disk space, "
                      "or run fewer models at a time (each run directory is independent; --resume "
                      "continues an interrupted one)")


def _external_trajectory(traj_dir: Path | None, model_name: str, task_id: str):
    """Path of an external TUM trajectory for (model, task), or None."""
    if traj_dir is None:
        return None
    for p in (Path(traj_dir) / slug(model_name) / f"{task_id}.txt", Path(traj_dir) / f"{task_id}.txt",
              Path(traj_dir) / f"{task_id}.tum"):
        if p.exists():
            return p
    return None
