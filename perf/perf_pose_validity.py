"""Action-following validity of a pose estimator on a task suite (scoring protocol 3).

Scores controlled variants of every task's ground-truth video with the estimator and
benchmark.metrics.action_following, and checks the protocol's validity bars on them:

  gt         the ground-truth frames (the estimator's noise floor)
  perturbed  5 % of the pixels moved by +-1 grey level (imperceptible, PSNR > 55 dB)
  noise20    gaussian noise sigma 20 (must not improve any score)
  reversed   frames 1.. in reverse order (wrong motion)
  shuffled   frames 1.. in random order (no motion structure)
  static     frame 0 repeated (no motion)
  reproject  frame 0 warped with its depth to every commanded pose (benchmark.adapters.reproject)
  half_speed frame i shows ground-truth frame i // 2 (right direction, half the speed)
  double_speed frame i shows ground-truth frame min(2i, N-1) (twice the speed, then frozen)
  mirrored   every frame flipped left-right (yaw and sideways motion reversed, forward motion kept)
The last three check that the reference depth the estimator takes at its keyframes (protocol 3)
cannot make a wrong motion look right: the motion is measured from the video's pixels. For the
re-timed ones the true poses of the frames shown are known (``ideal_*``): a re-timed video must not
score better than its true poses do (the report also shows how close it comes).
(frame 0 is always the given first frame; per-task seeds, so any subset of tasks gives the same
videos). ``gt`` is estimated twice to check determinism. Frames per second of the estimator are
measured on the gt videos (wall time of the estimator only, one process per worker).

    python perf/perf_pose_validity.py --suite-dir SUITE [--estimator direct]
        [--workers 2] [--tasks ID,ID] [--out reports/perf_pose_validity]   # .md and .json (atomic)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmark.adapters.reproject import ReprojectModel
from benchmark.metrics.action_following import score_action_following
from benchmark.metrics import action_following, observability
from benchmark.metrics.observability import observable_frames
from benchmark.pose_estimation import direct_estimator
from benchmark.pose_estimation.registry import run_estimator
from benchmark.protocol import PROTOCOL_VERSION
from benchmark.tasks.io import load_suite
from datagen.atomic import atomic_write_text

VARIANTS = ("gt", "perturbed", "noise20", "reversed", "shuffled", "static", "reproject",
            "half_speed", "double_speed", "mirrored")
KEYS = ("rpe_trans_rel", "rpe_trans", "rpe_rot_deg", "rpe_rot_rel", "spurious_trans")


RETIMED = ("half_speed", "double_speed")


def retimed_index(name: str, n: int) -> np.ndarray:
    """Which ground-truth frame each frame of a re-timed variant shows."""
    i = np.arange(n)
    return i // 2 if name == "half_speed" else np.minimum(2 * i, n - 1)


def make_variant(name: str, gt: np.ndarray, seed: int, task=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = len(gt)
    if name == "gt":
        return gt
    if name == "perturbed":
        flip = (rng.random(gt.shape) < 0.05) * rng.choice([-1, 1], size=gt.shape)
        flip[0] = 0
        return np.clip(gt.astype(np.int16) + flip, 0, 255).astype(np.uint8)
    if name == "noise20":
        noise = rng.normal(size=gt.shape) * 20
        noise[0] = 0
        return np.clip(gt + noise, 0, 255).round().astype(np.uint8)
    if name == "reversed":
        return np.concatenate([gt[:1], gt[1:][::-1]])
    if name == "shuffled":
        return gt[np.concatenate([[0], 1 + rng.permutation(n - 1)])]
    if name == "static":
        return np.repeat(gt[:1], n, axis=0)
    if name in RETIMED:
        return gt[retimed_index(name, n)]
    if name == "mirrored":
        return np.ascontiguousarray(gt[:, :, ::-1])
    if name == "reproject":
        m = ReprojectModel()
        m.bind_task(task)
        m.reset(gt[0], task.prompt, task.K)
        acts = np.asarray(task.actions, dtype=np.float32)[: n - 1]
        return np.concatenate([gt[:1], m.step(acts, task.gamma)], axis=0)
    raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")


def _score_task(args) -> list[dict]:
    """Rows of one task; variants already in its cache file are reused (each variant's frames depend on
    the task's seed only, not on which other variants run), the others computed and added."""
    suite_dir, task_id, estimator, variants, index, cache_dir, twice = args
    cache = Path(cache_dir) / f"{task_id}.json"
    done = {r["variant"]: r for r in json.loads(cache.read_text())} if cache.exists() else {}
    if twice and "gt" in variants and "gt" in done and "deterministic" not in done["gt"]:
        del done["gt"]   # the determinism check was asked for and not made: estimate again
    missing = [v for v in variants if v not in done]
    if missing:
        for r in _score_task_uncached(suite_dir, task_id, estimator, missing, index, twice):
            done[r["variant"]] = r
        atomic_write_text(cache, json.dumps([done[v] for v in VARIANTS if v in done]))
    return [done[v] for v in variants]


def _score_task_uncached(suite_dir, task_id, estimator, variants, index, twice=True) -> list[dict]:
    task = load_suite(Path(suite_dir), [task_id]).tasks[0]
    gt = task.gt_frames()
    depth = task.gt_depth()
    observable = observable_frames(gt)   # from the ground truth: the same scored segments for every variant
    rows = []
    gt_poses = None
    for v in variants:
        frames = make_variant(v, gt, seed=1000 + index, task=task)
        t0 = time.perf_counter()
        res = run_estimator(estimator, frames, task.K, depth0=depth[0], depth_ref=depth, ref_poses=task.gt_poses)
        dt = time.perf_counter() - t0
        af = score_action_following(task.gt_poses, res.poses, task.fps, est_metric=bool(res.metric),
                                    observable=observable)
        row = dict(task=task.task_id, family=task.family, variant=v, frames=int(len(frames)), seconds=dt,
                   failed_frac=res.num_failed / max(1, len(frames) - 1),
                   cmd_speed=float(np.mean(af.kinds.length_m[af.kinds.translating])) * task.fps / af.kinds.delta
                   if af.kinds.translating.any() else float("nan"))
        row.update({k: float(af.metrics[k]) for k in af.metrics})
        if v in RETIMED:  # what a perfect estimator would give: the true poses of the frames shown
            ideal = score_action_following(task.gt_poses, task.gt_poses[retimed_index(v, len(frames))], task.fps,
                                           observable=observable)
            row.update({f"ideal_{k}": float(ideal.metrics[k]) for k in ("rpe_trans_rel", "rpe_rot_rel")})
        rows.append(row)
        if v == "gt" and twice:  # estimated again, never from the pose cache
            gt_poses = res.poses
            again = run_estimator(estimator, frames, task.K, depth0=depth[0], depth_ref=depth, ref_poses=task.gt_poses,
                                  use_cache=False).poses
            row["deterministic"] = bool(np.array_equal(again, gt_poses))
    return rows


def _mean(rows, variant, key, family=None, tasks=None):
    vals = [r[key] for r in rows if r["variant"] == variant and (family is None or r["family"] == family)
            and (tasks is None or r["task"] in tasks)]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def checks(rows) -> list[tuple[str, bool, str]]:
    """The protocol's validity bars (issue 16) on the measured rows: (description, passed, values)."""
    out = []
    have = {r["variant"] for r in rows}
    fams = sorted({r["family"] for r in rows})
    g = lambda v, k, f=None: _mean(rows, v, k, f)  # noqa: E731
    tasks_of = lambda v: {r["task"] for r in rows if r["variant"] == v}  # noqa: E731
    # a variant scored on some tasks only is compared with the ground truth on the SAME tasks
    gp = lambda bad, k: _mean(rows, "gt", k, tasks=tasks_of(bad))  # noqa: E731
    if {"gt", "static"} <= have:
        a, b = gp("static", "rpe_trans_rel"), g("static", "rpe_trans_rel")
        out.append(("gt rpe_trans_rel <= 0.25 x static (suite mean)", a <= 0.25 * b, f"{a:.3f} vs {b:.3f}"))
        for f in fams:
            a, b = g("gt", "rpe_trans_rel", f), g("static", "rpe_trans_rel", f)
            if np.isfinite(b):
                out.append((f"gt rpe_trans_rel <= 0.25 x static ({f})", a <= 0.25 * b, f"{a:.3f} vs {b:.3f}"))
        a, b = g("gt", "rpe_rot_deg"), g("static", "rpe_rot_deg")
        out.append(("gt rpe_rot_deg <= 0.2 x static (suite mean)", a <= 0.2 * b, f"{a:.3f} vs {b:.3f}"))
        for f in fams:
            a = g("gt", "rpe_rot_rel", f)
            if np.isfinite(a):
                out.append((f"gt rpe_rot_rel <= 0.2 ({f})", a <= 0.2, f"{a:.3f}"))
        a, sp = g("gt", "spurious_trans"), g("gt", "cmd_speed")
        out.append(("gt spurious_trans <= 0.1 x mean commanded speed", a <= 0.1 * sp, f"{a:.3f} vs {sp:.3f} m/s"))
    for bad in ("reversed", "shuffled"):
        if {"gt", bad} <= have:
            a, b = gp(bad, "rpe_trans_rel"), g(bad, "rpe_trans_rel")
            out.append((f"{bad} rpe_trans_rel >= max(0.5, 2 x gt)", b >= max(0.5, 2 * a), f"{b:.3f} vs gt {a:.3f}"))
            a, b = gp(bad, "rpe_rot_deg"), g(bad, "rpe_rot_deg")
            out.append((f"{bad} rpe_rot_deg >= 2 x gt", b >= 2 * a, f"{b:.3f} vs gt {a:.3f}"))
    if {"gt", "noise20"} <= have:
        a, b = gp("noise20", "rpe_trans_rel"), g("noise20", "rpe_trans_rel")
        out.append(("noise20 rpe_trans_rel >= gt - 0.02", b >= a - 0.02, f"{b:.3f} vs gt {a:.3f}"))
        a, b = gp("noise20", "rpe_rot_deg"), g("noise20", "rpe_rot_deg")
        out.append(("noise20 rpe_rot_deg >= gt - 0.2", b >= a - 0.2, f"{b:.3f} vs gt {a:.3f}"))
    for v in RETIMED:
        if v in have:
            for k in ("rpe_trans_rel", "rpe_rot_rel"):
                # the leak that matters: a wrong speed must not score better than its true poses do
                a, b = g(v, f"ideal_{k}"), g(v, k)
                out.append((f"{v} {k} no better than its true value - 0.1 (suite mean)", b >= a - 0.1,
                            f"{b:.3f} vs true {a:.3f} (difference {b - a:+.3f})"))
    if {"gt", "mirrored"} <= have:
        a, b = gp("mirrored", "rpe_rot_deg"), g("mirrored", "rpe_rot_deg")
        out.append(("mirrored rpe_rot_deg >= 2 x gt", b >= 2 * a, f"{b:.3f} vs gt {a:.3f}"))
    if {"gt", "perturbed"} <= have:
        gt_rows = {r["task"]: r for r in rows if r["variant"] == "gt"}
        dt, dr = [], []
        for r in rows:
            if r["variant"] == "perturbed":
                q = gt_rows[r["task"]]
                if np.isfinite(q["rpe_trans_rel"]):
                    dt.append(abs(r["rpe_trans_rel"] - q["rpe_trans_rel"]))
                dr.append(abs(r["rpe_rot_deg"] - q["rpe_rot_deg"]))
        mt, mr = max(dt, default=0.0), max(dr, default=0.0)
        out.append(("perturbed: every task's rpe_trans_rel moves <= 0.05", mt <= 0.05, f"max {mt:.3f}"))
        out.append(("perturbed: every task's rpe_rot_deg moves <= 0.5 deg", mr <= 0.5, f"max {mr:.3f}"))
    det = [r["deterministic"] for r in rows if "deterministic" in r]
    if det:
        out.append(("gt estimated twice gives identical poses", all(det), f"{sum(det)}/{len(det)} tasks"))
    return out


def render_md(rows, meta) -> str:
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    fams = sorted({r["family"] for r in rows})
    gt = [r for r in rows if r["variant"] == "gt"]
    fps = sum(r["frames"] for r in gt) / max(1e-9, sum(r["seconds"] for r in gt))
    lines = [f"# Pose-estimator validity (scoring protocol {meta['protocol']})", "",
             f"Command: `{meta['command']}`  ", f"Suite: `{meta['suite']}` ({meta['n_tasks']} tasks), estimator "
             f"`{meta['estimator']}`, {meta['date']}, {meta['cpus']} CPU(s), {meta['workers']} worker(s).", "",
             f"Estimator speed on the ground-truth videos: **{fps:.1f} frames/s per process** "
             f"({sum(r['frames'] for r in gt)} frames in {sum(r['seconds'] for r in gt):.0f} s of estimator time).",
             "", "## Validity bars", "", "| check | result | values |", "|---|---|---|"]
    for d, ok, vals in checks(rows):
        lines.append(f"| {d} | {'PASS' if ok else 'FAIL'} | {vals} |")
    lines += ["", "## Suite means per variant", "", "| variant | tasks | " + " | ".join(KEYS) + " | failed frames |",
              "|---|---:|" + "---:|" * (len(KEYS) + 1)]
    for v in variants:
        lines.append(f"| {v} | {sum(r['variant'] == v for r in rows)} | "
                     + " | ".join(f"{_mean(rows, v, k):.3f}" for k in KEYS)
                     + f" | {_mean(rows, v, 'failed_frac'):.3f} |")
    lines += ["", "## Per family (gt / static / reproject)", "",
              "| family | gt tasks | segments trans/rot/rot-only/blank | " + " | ".join(KEYS) + " |",
              "|---|---:|---|" + "---|" * len(KEYS)]
    for f in fams:
        fam_gt = [r for r in rows if r["family"] == f and r["variant"] == "gt"]
        n = {k: sum(int(r.get(k, 0)) for r in fam_gt) for k in ("n_seg_trans", "n_seg_rot", "n_seg_rotonly", "n_seg_blank")}
        cells = []
        for k in KEYS:
            cells.append(" / ".join(f"{_mean(rows, v, k, f):.3f}" for v in ("gt", "static", "reproject") if v in variants))
        lines.append(f"| {f} | {len(fam_gt)} | {n['n_seg_trans']}/{n['n_seg_rot']}/{n['n_seg_rotonly']}/{n['n_seg_blank']} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Definitions: benchmark/metrics/action_following.py. NaN: the family has no segment of that kind. "
              "Segment counts are summed over the family's ground-truth rows; blank: left out because a ground-truth "
              "frame shows no texture (benchmark/metrics/observability.py).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--suite-dir", required=True)
    ap.add_argument("--estimator", default="direct")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--tasks", default="", help="comma-separated task ids (default: all)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", default="reports/perf_pose_validity")
    ap.add_argument("--cached-only", action="store_true",
                    help="compute nothing: report the rows already cached for the requested variants (runs on "
                         "task subsets with different variants are reported together)")
    ap.add_argument("--twice-every", type=int, default=1,
                    help="estimate the ground truth a second time (determinism check) on every K-th task; 0: never")
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
    ids = [t for t in args.tasks.split(",") if t] or None
    suite = load_suite(Path(args.suite_dir), ids)
    # per-task rows are cached (resumable; keyed by suite content, estimator and the code version of
    # the estimator and metric modules) under OUT.cache/
    code = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (direct_estimator, action_following,
                                                                           observability))).hexdigest()[:12]
    whole = load_suite(Path(args.suite_dir)) if ids else suite   # --tasks subsets share the whole suite's cache
    cache_dir = Path(str(args.out) + ".cache") / f"{whole.content_hash[:12]}-{args.estimator}-{code}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    index = {t.task_id: i for i, t in enumerate(whole.tasks)}
    jobs = []
    for i, t in enumerate(suite.tasks):
        i = index[t.task_id]   # a task's seed is its position in the whole suite
        twice = args.twice_every > 0 and i % args.twice_every == 0
        jobs.append((args.suite_dir, t.task_id, args.estimator, variants, i, str(cache_dir), twice))
    rows: list[dict] = []
    if args.cached_only:
        for job in jobs:
            f = cache_dir / f"{job[1]}.json"
            rows.extend(r for r in (json.loads(f.read_text()) if f.exists() else []) if r["variant"] in variants)
        jobs = []
    with get_context("spawn").Pool(max(1, args.workers)) as pool:
        for r in tqdm(pool.imap_unordered(_score_task, jobs), total=len(jobs), desc="tasks"):
            rows.extend(r)
    rows.sort(key=lambda r: (r["task"], VARIANTS.index(r["variant"])))
    meta = dict(protocol=PROTOCOL_VERSION, suite=str(args.suite_dir), n_tasks=len({r["task"] for r in rows}), estimator=args.estimator,
                date=time.strftime("%Y-%m-%d"), cpus=os.cpu_count(), workers=args.workers,
                command="python perf/perf_pose_validity.py " + " ".join(argv if argv is not None else os.sys.argv[1:]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md = render_md(rows, meta)
    atomic_write_text(out.with_suffix(".md"), md)
    atomic_write_text(out.with_suffix(".json"), json.dumps(dict(meta=meta, rows=rows,
                                                                checks=[list(c) for c in checks(rows)]), indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
