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
import os
import platform
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.leaderboard import write_leaderboard
from benchmark.naming import NOISE_FLOOR_MODEL, RESULT_COLUMNS, slug
from benchmark.protocol import PROTOCOL_VERSION
from benchmark.report_html import write_report
from benchmark.tasks.io import read_manifest, suite_content_hash
from benchmark.tasks.task import Task
from benchmark.world_model import WorldModel, check_frames
from datagen.atomic import atomic_write


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


def _local_rollout(model: WorldModel, task: Task) -> tuple:
    """("ok", Rollout) or ("error", message, traceback): one rollout in this process."""
    try:
        return "ok", rollout(model, task)
    except Exception as e:  # noqa: BLE001 - recorded by the harness, never silently dropped
        return "error", f"{type(e).__name__}: {e}", traceback.format_exc(limit=3)


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
    atomic_write(out_dir / "results.csv", lambda tmp: df.to_csv(tmp, index=False))
    atomic_write(out_dir / "results.parquet", lambda tmp: df.to_parquet(tmp, index=False))


def _score_job(task: Task, frames: np.ndarray | None, estimator: str, est_trajectory, lpips: bool):
    """Score one (model, task) rollout; ``frames=None`` scores the ground truth (noise floor).

    Returns (metrics, curves, est_poses)."""
    from benchmark.scoring import score_task

    frames = task.gt_frames() if frames is None else frames
    sc = score_task(task, frames, estimator=estimator, est_trajectory=est_trajectory, lpips=lpips)
    curves = {k: np.asarray(v) for k, v in (getattr(sc, "curves", None) or {}).items()}
    est = getattr(sc, "est_poses", None)
    return _metrics_of(sc), curves, (None if est is None else np.asarray(est, dtype=np.float64))


_WORKER_TASKS: dict = {}


def _worker_init(suite_root: str) -> None:
    import torch

    from benchmark.tasks.io import load_suite

    torch.set_num_threads(1)  # one scoring process per core
    _WORKER_TASKS["suite"] = load_suite(suite_root)


def _worker_score(task_id: str, frames_path: str | None, estimator: str, est_trajectory, lpips: bool):
    task = _WORKER_TASKS["suite"].task(task_id)
    frames = None if frames_path is None else np.load(frames_path)
    try:
        return _score_job(task, frames, estimator, est_trajectory, lpips)
    finally:  # a worker meets every task: caching them all would hold the whole suite (GBs)
        task.release()


class _torch_threads:
    """Context manager: torch intra-op threads = n inside, restored after (small images score
    faster single-threaded; the harness scores with n = 1)."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        import torch

        self.prev = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.prev)


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
    import pickle
    import shutil

    from tqdm import tqdm

    from benchmark.adapters import make_model
    from benchmark.scoring import NOISE_FLOOR_KEYS, NOISE_FLOOR_KEYS_FV

    floor_keys = NOISE_FLOOR_KEYS + NOISE_FLOOR_KEYS_FV  # est_noise_floor_<the oracle's metric>
    floor_metrics = [k.replace("est_noise_floor_", "") for k in floor_keys]

    out_dir = Path(out_dir)
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be local or ray, got {engine!r}")
    ray_engine = None
    if engine == "ray":
        from benchmark.ray_engine import RayEngine

        ray_engine = RayEngine(suite_root, address=ray_address, gpus_per_model=ray_gpus_per_model)
        out_dir = out_dir.resolve()  # Ray workers read the saved frames by path
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = out_dir / ".frames"
    score_cache = out_dir / ".scores"
    if not resume:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(score_cache, ignore_errors=True)
    from benchmark.metrics.image_quality import lpips_weights_path

    lpips_file = lpips_weights_path() if lpips else None
    score_key = {"estimator": str(estimator), "lpips": bool(lpips), "lpips_weights": lpips_file,
                 "protocol": PROTOCOL_VERSION}
    n_resumed = {"rollouts": 0, "scores": 0}
    t_start = time.perf_counter()
    rows: list[dict] = []
    failures: list[dict] = []
    not_applicable: list[dict] = []
    model_meta: dict[str, dict] = {}
    by_id = {t.task_id: t for t in tasks}
    timings = {"rollout_s": {}, "scoring_s": 0.0}

    def cache_path(m, tid):
        return score_cache / slug(m) / f"{tid}.pkl"

    def cached_score(m, tid):
        """The saved score of (model, task) when it was computed with this run's settings."""
        path = cache_path(m, tid)
        if not (resume and path.exists()):
            return None
        saved = pickle.loads(path.read_bytes())
        return saved["result"] if saved.get("key") == score_key else None

    def add(model, task, metrics):
        for k, v in metrics.items():
            rows.append({"model": model, "task": task.task_id, "family": task.family, "metric": k, "value": float(v),
                         "protocol": PROTOCOL_VERSION})

    # ---- phase 1: rollouts (timed, sequential)
    jobs: list[tuple[str, str, str | None, object, dict]] = []  # (model, task_id, frames path, est traj, speed)
    instances: list[tuple[str, WorldModel | None]] = [(s, None) for s in model_specs]
    instances += list((models or {}).items())
    _check_scratch_space(scratch, [slug(getattr(inst, "name", None) or spec) for spec, inst in instances],
                         tasks, resume)
    for spec, inst in instances:
        try:
            model = inst if inst is not None else make_model(spec)
        except Exception as e:  # noqa: BLE001 - recorded, reported, never silently dropped
            failures.append({"model": spec, "task": None, "stage": "build", "error": f"{type(e).__name__}: {e}"})
            print(f"[bench] skipping model {spec}: {e}")
            continue
        name = model.name
        if name in model_meta:  # e.g. `relic` and `relic:OTHER_CHECKPOINT`: both call themselves "relic"
            if spec in model_meta:
                failures.append({"model": spec, "task": None, "stage": "build",
                                 "error": f"another model in this run is already named {name!r}"})
                print(f"[bench] skipping model {spec}: another model in this run is already named {name!r}")
                model.close()
                continue
            print(f"[bench] {spec}: the name {name!r} is taken by an earlier model in this run; "
                  f"this one is named by its spec")
            model.name = name = spec
        model_meta[name] = model.describe() if hasattr(model, "describe") else {"name": name}
        t_model = time.perf_counter()
        todo: list[Task] = []
        for task in tasks:
            reason = model.out_of_action_space(task) if hasattr(model, "out_of_action_space") else None
            if reason:
                not_applicable.append({"model": name, "task": task.task_id, "reason": str(reason)})
                continue
            fp = scratch / slug(name) / f"{task.task_id}.npy"
            sp = fp.with_suffix(".speed.json")
            if resume and sp.exists() and (fp.exists() or cached_score(name, task.task_id) is not None):
                jobs.append((name, task.task_id, str(fp), _external_trajectory(trajectories_dir, name, task.task_id),
                             json.loads(sp.read_text())))
                n_resumed["rollouts"] += 1
                continue
            todo.append(task)
        if ray_engine is not None:
            done = ((by_id[tid], reply) for tid, reply in ray_engine.rollouts(spec, inst, [t.task_id for t in todo]))
        else:
            done = ((task, _local_rollout(model, task)) for task in todo)
        for task, reply in tqdm(done, total=len(todo), desc=f"run {name}", disable=not progress):
            if reply[0] != "ok":
                failures.append({"model": name, "task": task.task_id, "stage": "rollout", "error": reply[1],
                                 "traceback": reply[2]})
                print(f"[bench] {name} failed on {task.task_id}: {reply[1]}")
                continue
            r = reply[1]
            fp = scratch / slug(name) / f"{task.task_id}.npy"
            sp = fp.with_suffix(".speed.json")
            fp.parent.mkdir(parents=True, exist_ok=True)
            _save_npy(fp, r.frames)
            speed = r.speed_metrics() if getattr(model, "measures_speed", True) else {}
            atomic_write(sp, lambda tmp, speed=speed: Path(tmp).write_text(json.dumps(speed)))
            jobs.append((name, task.task_id, str(fp), _external_trajectory(trajectories_dir, name, task.task_id),
                         speed))
            strip = revisit_strip(task, r.frames)
            if strip is not None:
                _save_png(out_dir / "strips" / slug(name) / f"{task.task_id}.png", strip)
            task.release()  # ground truth read by privileged baselines / strips: not kept for all tasks
        model.close()
        timings["rollout_s"][name] = round(time.perf_counter() - t_model, 3)

    # ---- phase 2: scoring
    oracle_ok = {tid for (m, tid, _, est, _) in jobs if m == "oracle" and est is None}
    floor_jobs = [(NOISE_FLOOR_MODEL, t.task_id, None, None, {}) for t in tasks if t.task_id not in oracle_ok]
    all_jobs = floor_jobs + jobs
    if workers is None:  # processes pay a few seconds of start-up: only for real amounts of work
        n_frames = sum(by_id[tid].num_frames for _, tid, _, _, _ in all_jobs)
        workers = min(2, os.cpu_count() or 1) if (suite_root and n_frames >= 1500) else 1
    workers = max(1, min(int(workers), len(all_jobs) or 1))
    t_score = time.perf_counter()
    results: dict[tuple[str, str], tuple] = {}

    frames_of = {(m, tid): fp for m, tid, fp, _, _ in all_jobs}

    def keep(key, res):
        results[key] = res
        path = cache_path(*key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(pickle.dumps({"key": score_key, "result": res})))
        if frames_of.get(key):  # scored and saved: the frames are no longer needed
            Path(frames_of[key]).unlink(missing_ok=True)

    def score_failed(key, e):
        failures.append({"model": key[0], "task": key[1], "stage": "score", "error": f"{type(e).__name__}: {e}",
                         "traceback": traceback.format_exc(limit=3)})
        print(f"[bench] scoring {key[0]} on {key[1]} failed: {type(e).__name__}: {e}")

    if resume:
        for m, tid, _, _, _ in all_jobs:
            res = cached_score(m, tid)
            if res is not None:
                results[(m, tid)] = res
                n_resumed["scores"] += 1
    todo = [j for j in all_jobs if (j[0], j[1]) not in results]
    if ray_engine is not None:
        replies = ray_engine.score((tid, fp, estimator, est, lpips) for _, tid, fp, est, _ in todo)
        for i, reply in tqdm(replies, total=len(todo), desc="score", disable=not progress):
            key = (todo[i][0], todo[i][1])
            if reply[0] == "ok":
                keep(key, reply[1])
            else:  # recorded like a local scoring failure; the model is then incomplete
                failures.append({"model": key[0], "task": key[1], "stage": "score", "error": reply[1],
                                 "traceback": reply[2]})
                print(f"[bench] scoring {key[0]} on {key[1]} failed: {reply[1]}")
        workers = f"ray ({ray_engine.address or 'local'})"
        timings["ray_startup_s"] = round(ray_engine.startup_s(), 3)
        ray_engine.close()
    elif workers > 1 and suite_root:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init, initargs=(str(suite_root),)) as ex:
            futs = {ex.submit(_worker_score, tid, fp, estimator, est, lpips): (m, tid) for m, tid, fp, est, _ in todo}
            for f in tqdm(futs, desc="score", disable=not progress):
                try:
                    keep(futs[f], f.result())
                except Exception as e:  # noqa: BLE001 - recorded; the model is then incomplete
                    score_failed(futs[f], e)
    else:
        with _torch_threads(1):
            for m, tid, fp, est, _ in tqdm(todo, desc="score", disable=not progress):
                try:
                    keep((m, tid), _score_job(by_id[tid], None if fp is None else np.load(fp), estimator, est, lpips))
                except Exception as e:  # noqa: BLE001
                    score_failed((m, tid), e)
                by_id[tid].release()
    timings["scoring_s"] = round(time.perf_counter() - t_score, 3)

    floors: dict[str, dict] = {}
    for t in tasks:
        src = ("oracle", t.task_id) if t.task_id in oracle_ok else (NOISE_FLOOR_MODEL, t.task_id)
        met = results[src][0] if src in results else {}
        floors[t.task_id] = {k: met.get(k, float("nan")) for k in floor_metrics}
        add(NOISE_FLOOR_MODEL, t, floors[t.task_id])
    for m, tid, fp, est, speed in jobs:
        task = by_id[tid]
        if (m, tid) not in results:
            continue  # scoring failed: recorded in failures, the task is missing for this model
        metrics, curves, est_poses = results[(m, tid)]
        metrics = dict(metrics)
        for key, short in zip(floor_keys, floor_metrics):  # the estimator's noise floor beside every result
            metrics[key] = floors[tid][short]
        metrics.update(speed)
        add(m, task, metrics)
        if curves:
            _save_npz(out_dir / "curves" / slug(m) / f"{tid}.npz", **curves)
        if est_poses is not None:
            _save_npz(out_dir / "trajectories" / slug(m) / f"{tid}.npz", est_poses=est_poses,
                      gt_poses=np.asarray(task.gt_poses, dtype=np.float64))
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(score_cache, ignore_errors=True)

    df = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    write_results(df, out_dir)
    run_info = {
        "suite": suite_name, "suite_root": str(suite_root) if suite_root else None,
        "tasks": [{"task_id": t.task_id, "family": t.family, "scene_id": t.scene_id, "num_frames": t.num_frames,
                   "fps": t.fps, "width": t.width, "height": t.height} for t in tasks],
        "models": model_meta, "model_specs": list(model_specs) + list((models or {}).keys()),
        "failures": failures, "not_applicable": not_applicable, "allow_missing": bool(allow_missing),
        "suite_content_sha256": _suite_hash(suite_root),
        "protocol": PROTOCOL_VERSION, "estimator": estimator, "lpips_requested": bool(lpips),
        "lpips_weights": lpips_file,
        "timings": timings, "scoring_workers": workers, "resumed": n_resumed, "engine": engine,
        "wall_s": round(time.perf_counter() - t_start, 3), "platform": platform.platform(),
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_run_info(out_dir, run_info, report)
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
    import shutil

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
