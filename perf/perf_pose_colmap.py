"""Evaluate pose estimators (default: ``colmap`` against ``opencv``) on a suite's ground-truth videos
and controlled variants, with the action-following protocol (benchmark.metrics.action_following).

Variants (frame 0 is always the task's first frame; same construction and seed as
/work/shared/tools/score_variants.py, rng seed 7 drawn per task in manifest order):
  gt         ground truth
  gt2        ground truth again (determinism: poses must be bit-identical to gt's)
  perturbed  5% of the pixels moved by +-1 grey level (stability: |metric(gt) - metric(perturbed)|)
  noise20    gaussian noise sigma 20
  reversed   frames 1.. in reverse order
  shuffled   frames 1.. in random order
  static     frame 0 repeated

``colmap`` and ``colmap-rot`` share one COLMAP reconstruction per video (joint_colmap). Each
(estimator, variant, task) is run once with ``run_estimator(name, frames, K, depth0=GT depth of
frame 0)`` and cached under WORK/<estimator>/<variant>/<task>.npz (poses, step kinds, metric flag,
seconds), so the script resumes; delete WORK after changing an estimator. Metrics per task come from
``score_action_following(gt_poses, est_poses, fps, est_metric)``; the tables show suite means (NaN-aware)
over the tasks that were run.

usage: python perf/perf_pose_colmap.py --suite-dir SUITE [--work DIR] [--estimators colmap,opencv]
       [--variants gt,gt2,...] [--tasks id,...] [--variant-tasks id,...] [--out reports/perf_pose_colmap]
``--variant-tasks`` restricts the variants other than gt to those tasks (CPU budget); the report says
which tasks every cell covers.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.metrics.action_following import score_action_following  # noqa: E402
from benchmark.pose_estimation.colmap_estimator import ColmapEstimator  # noqa: E402
from benchmark.pose_estimation.registry import run_estimator  # noqa: E402
from benchmark.tasks.io import load_suite  # noqa: E402

VARIANTS = ["gt", "gt2", "perturbed", "noise20", "reversed", "shuffled", "static"]
KEYS = ["rpe_trans_rel", "rpe_trans", "rpe_rot_deg", "rpe_rot_rel", "spurious_trans"]


def make_variants(gt: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Same draws, in the same order, as score_variants.py."""
    n = len(gt)
    flip = (rng.random(gt.shape) < 0.05) * rng.choice([-1, 1], size=gt.shape)
    flip[0] = 0
    noise = rng.normal(size=gt.shape) * 20
    noise[0] = 0
    perm = np.concatenate([[0], 1 + rng.permutation(n - 1)])
    return {
        "gt": gt, "gt2": gt,
        "perturbed": np.clip(gt.astype(int) + flip, 0, 255).astype(np.uint8),
        "noise20": np.clip(gt + noise, 0, 255).round().astype(np.uint8),
        "reversed": np.concatenate([gt[:1], gt[1:][::-1]]),
        "shuffled": gt[perm],
        "static": np.repeat(gt[:1], n, 0),
    }


def run_one(est: str, frames: np.ndarray, K: np.ndarray, depth0: np.ndarray, path: Path) -> dict:
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {"poses": z["poses"], "step_kind": [str(s) for s in z["step_kind"]],
                    "metric": bool(z["metric"]), "seconds": float(z["seconds"]),
                    "cpu_seconds": float(z["cpu_seconds"]) if "cpu_seconds" in z.files else float("nan")}
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_estimator(est, frames, K, depth0=depth0)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, poses=res.poses, step_kind=np.array(res.step_kind, dtype=str), metric=res.metric, seconds=sec,
             cpu_seconds=cpu)
    os.replace(tmp, path)
    return {"poses": res.poses, "step_kind": list(res.step_kind), "metric": bool(res.metric), "seconds": sec,
            "cpu_seconds": cpu}


def joint_colmap(frames, K, depth0, work: Path, variant: str, task_id: str) -> None:
    """``colmap`` and ``colmap-rot`` from one COLMAP reconstruction (they differ only in how frames
    in no model are posed); both get the time of the whole run."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = ColmapEstimator().estimate(frames, K, depth0, fallbacks=(False, True))
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    for name, r in zip(("colmap", "colmap-rot"), res):
        path = work / name / variant / f"{task_id}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, poses=r.poses, step_kind=np.array(r.step_kind, dtype=str), metric=r.metric, seconds=sec,
                 cpu_seconds=cpu)
        os.replace(tmp, path)


def _nanmean(xs) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.mean(xs)) if xs else float("nan")


def _fmt(x, nd=3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{nd}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite-dir", required=True)
    ap.add_argument("--work", default="/tmp/colmap_eval/work")
    ap.add_argument("--estimators", default="colmap,colmap-rot,opencv")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--tasks", default="")
    ap.add_argument("--variant-tasks", default="", help="tasks for the variants other than gt (default: all)")
    ap.add_argument("--out", default="reports/perf_pose_colmap")
    ap.add_argument("--report-only", action="store_true", help="only tabulate what WORK already holds")
    ap.add_argument("--note", default="", help="markdown appended to the report (e.g. the commands of the runs)")
    a = ap.parse_args(argv)
    ests = [e for e in a.estimators.split(",") if e]
    variants = [v for v in a.variants.split(",") if v]
    suite = load_suite(Path(a.suite_dir))
    tasks = [t for t in suite.tasks if not a.tasks or t.task_id in a.tasks.split(",")]
    vtasks = set(a.variant_tasks.split(",")) if a.variant_tasks else {t.task_id for t in tasks}
    work = Path(a.work)
    rng = np.random.default_rng(7)
    rows = []  # one per (estimator, variant, task)
    for t in suite.tasks:  # rng draws in manifest order, for every task, as score_variants.py does
        gt = t.gt_frames()
        vids = make_variants(gt, rng)
        if t not in tasks:
            continue
        depth0 = t.gt_depth()[0]
        for est in ests:
            for v in variants:
                if v != "gt" and t.task_id not in vtasks:
                    continue
                path = work / est / v / f"{t.task_id}.npz"
                if a.report_only and not path.exists():
                    continue
                if est in ("colmap", "colmap-rot") and not path.exists() and not a.report_only:
                    joint_colmap(vids[v], t.K, depth0, work, v, t.task_id)
                r = run_one(est, vids[v], t.K, depth0, path)
                af = score_action_following(t.gt_poses, r["poses"], t.fps, est_metric=r["metric"])
                n = len(r["step_kind"])
                row = {"estimator": est, "variant": v, "task": t.task_id, "family": t.family,
                       "frames": t.num_frames, "seconds": r["seconds"], "s_per_frame": r["seconds"] / t.num_frames,
                       "cpu_s_per_frame": r["cpu_seconds"] / t.num_frames,
                       "failed_frac": sum(k == "failed" for k in r["step_kind"]) / max(n, 1),
                       "metric": r["metric"], **{k: af.metrics[k] for k in KEYS},
                       "poses_sha": __import__("hashlib").sha256(np.ascontiguousarray(r["poses"]).tobytes()).hexdigest()[:16]}
                rows.append(row)
                print(f"{est:8s} {v:9s} {t.task_id:42s} trans_rel {_fmt(row['rpe_trans_rel'])} rot {_fmt(row['rpe_rot_deg'], 2)} "
                      f"spur {_fmt(row['spurious_trans'])} failed {row['failed_frac']:.2f} {row['s_per_frame']:.3f} s/frame",
                      flush=True)
    write_report(rows, ests, variants, a, Path(a.out))
    return 0


def _argv_shown() -> list[str]:
    """sys.argv[1:] with the text of --note left out."""
    out, skip = [], False
    for x in sys.argv[1:]:
        if skip:
            out.append("...")
            skip = False
            continue
        skip = x == "--note"
        out.append(x.split("=", 1)[0] + "=..." if x.startswith("--note=") else x)
    return out


def _bars_row(est: str, rows, get) -> str:
    """One line of pass/fail against issue 16's bars, each on the tasks where both variants exist."""
    def pair(v):
        ts = [r["task"] for r in rows if r["estimator"] == est and r["variant"] == v and (est, "gt", r["task"]) in get]
        g = {k: _nanmean(get[(est, "gt", t)][k] for t in ts) for k in KEYS}
        x = {k: _nanmean(get[(est, v, t)][k] for t in ts) for k in KEYS}
        return ts, g, x

    def ok(b):
        return "PASS" if b else "fail"

    cells = []
    ts, g, x = pair("static")
    cells.append(len(ts))
    cells.append(f"{ok(g['rpe_trans_rel'] <= 0.25 * x['rpe_trans_rel'])} ({_fmt(g['rpe_trans_rel'])} vs {_fmt(x['rpe_trans_rel'])})"
                 if ts else "-")
    cells.append(f"{ok(g['rpe_rot_deg'] <= 0.2 * x['rpe_rot_deg'])} ({_fmt(g['rpe_rot_deg'], 2)} vs {_fmt(x['rpe_rot_deg'], 2)})"
                 if ts else "-")
    for v in ("reversed", "shuffled"):
        ts, g, x = pair(v)
        cells.append(f"{ok(x['rpe_trans_rel'] >= max(2 * g['rpe_trans_rel'], 0.5) and x['rpe_rot_deg'] >= 2 * g['rpe_rot_deg'])} "
                     f"({_fmt(x['rpe_trans_rel'])}, {_fmt(x['rpe_rot_deg'], 2)})" if ts else "-")
    ts, g, x = pair("noise20")
    cells.append(f"{ok(x['rpe_trans_rel'] >= g['rpe_trans_rel'] - 0.02 and x['rpe_rot_deg'] >= g['rpe_rot_deg'] - 0.2)} "
                 f"({_fmt(x['rpe_trans_rel'])}, {_fmt(x['rpe_rot_deg'], 2)})" if ts else "-")
    ts, _, _ = pair("perturbed")
    if ts:
        dt = max((abs(get[(est, "perturbed", t)]["rpe_trans_rel"] - get[(est, "gt", t)]["rpe_trans_rel"]) for t in ts
                  if math.isfinite(get[(est, "gt", t)]["rpe_trans_rel"])), default=float("nan"))
        dr = max(abs(get[(est, "perturbed", t)]["rpe_rot_deg"] - get[(est, "gt", t)]["rpe_rot_deg"]) for t in ts)
        cells.append(f"{ok(dt <= 0.05 and dr <= 0.5)} (max {_fmt(dt)}, {_fmt(dr, 2)} deg)")
    else:
        cells.append("-")
    ts, _, _ = pair("gt2")
    same = sum(get[(est, "gt2", t)]["poses_sha"] == get[(est, "gt", t)]["poses_sha"] for t in ts)
    cells.append(f"{ok(same == len(ts))} ({same}/{len(ts)})" if ts else "-")
    return f"| {est} | " + " | ".join(str(c) for c in cells) + " |"


def write_report(rows, ests, variants, a, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    get = {(r["estimator"], r["variant"], r["task"]): r for r in rows}
    summary = {}
    for est in ests:
        for v in variants:
            rs = [r for r in rows if r["estimator"] == est and r["variant"] == v]
            if not rs:
                continue
            s = {k: _nanmean(r[k] for r in rs) for k in KEYS}
            s["failed_frac"] = _nanmean(r["failed_frac"] for r in rs)
            s["s_per_frame"] = sum(r["seconds"] for r in rs) / sum(r["frames"] for r in rs)
            cp = [r for r in rs if math.isfinite(r["cpu_s_per_frame"])]
            s["cpu_s_per_frame"] = (sum(r["cpu_s_per_frame"] * r["frames"] for r in cp) / sum(r["frames"] for r in cp)
                                    if cp else float("nan"))
            s["tasks"] = sorted(r["task"] for r in rs)
            if v in ("gt2", "perturbed"):
                pairs = [(get.get((est, "gt", r["task"])), r) for r in rs]
                pairs = [(g, r) for g, r in pairs if g is not None]
                if v == "gt2":
                    s["identical_tasks"] = sum(g["poses_sha"] == r["poses_sha"] for g, r in pairs)
                    s["compared_tasks"] = len(pairs)
                else:
                    for k in ("rpe_trans_rel", "rpe_rot_deg"):
                        d = [abs(r[k] - g[k]) for g, r in pairs if math.isfinite(r[k]) and math.isfinite(g[k])]
                        s[f"max_abs_change_{k}"] = max(d) if d else float("nan")
                    s["per_task_change"] = {r["task"]: {k: r[k] - g[k] for k in ("rpe_trans_rel", "rpe_rot_deg")}
                                            for g, r in pairs}
            summary[f"{est}/{v}"] = s
    out.with_suffix(".json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=float))
    L = ["# Pose estimators on the smoke suite: " + ", ".join(f"`{e}`" for e in ests), "",
         "Generated by `perf/perf_pose_colmap.py` (action-following protocol of "
         "benchmark/metrics/action_following.py: 1-s segments, metric estimates scored as they are).", "",
         "Command: `" + " ".join(["python", "perf/perf_pose_colmap.py"] + _argv_shown()) + "`", "",
         "## Suite means per variant", "",
         "| estimator | variant | tasks | rpe_trans_rel | rpe_trans (m) | rpe_rot_deg | rpe_rot_rel | spurious_trans (m/s) "
         "| failed frames | s/frame (wall) | s/frame (CPU) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, s in summary.items():
        est, v = key.split("/")
        L.append(f"| {est} | {v} | {len(s['tasks'])} | {_fmt(s['rpe_trans_rel'])} | {_fmt(s['rpe_trans'])} | "
                 f"{_fmt(s['rpe_rot_deg'], 2)} | {_fmt(s['rpe_rot_rel'])} | {_fmt(s['spurious_trans'])} | "
                 f"{s['failed_frac']:.3f} | {s['s_per_frame']:.3f} | {_fmt(s['cpu_s_per_frame'])} |")
    L += ["", "## Determinism and stability", ""]
    for est in ests:
        s2, sp = summary.get(f"{est}/gt2"), summary.get(f"{est}/perturbed")
        if s2:
            L.append(f"- {est}: gt scored twice -> bit-identical poses on {s2['identical_tasks']}/{s2['compared_tasks']} tasks")
        if sp:
            L.append(f"- {est}: 5% pixels +-1 -> max per-task |change| rpe_trans_rel {_fmt(sp['max_abs_change_rpe_trans_rel'])}, "
                     f"rpe_rot_deg {_fmt(sp['max_abs_change_rpe_rot_deg'], 2)} (bars 0.05 / 0.5 deg)")
    L += ["", "## Issue 16 bars (suite means over the tasks both variants were run on)", "",
          "| estimator | tasks | GT trans_rel <= 0.25 x static | GT rot_deg <= 0.2 x static | reversed >= 2x GT, >= 0.5 "
          "(trans_rel) / >= 2x (rot) | shuffled (same) | noise20 no better by > 0.02 / 0.2 deg | perturbed <= 0.05 / 0.5 deg "
          "| gt twice identical |", "|---|---|---|---|---|---|---|---|---|"]
    for est in ests:
        L.append(_bars_row(est, rows, get))
    L += ["", "## Per task (gt and perturbed)", "",
          "| estimator | task | gt trans_rel | gt rot_deg | gt spurious | gt failed | pert. trans_rel | pert. rot_deg | s/frame |",
          "|---|---|---|---|---|---|---|---|---|"]
    for est in ests:
        for r in [r for r in rows if r["estimator"] == est and r["variant"] == "gt"]:
            p = get.get((est, "perturbed", r["task"]))
            L.append(f"| {est} | {r['task']} | {_fmt(r['rpe_trans_rel'])} | {_fmt(r['rpe_rot_deg'], 2)} | "
                     f"{_fmt(r['spurious_trans'])} | {r['failed_frac']:.2f} | {_fmt(p['rpe_trans_rel']) if p else '-'} | "
                     f"{_fmt(p['rpe_rot_deg'], 2) if p else '-'} | {r['s_per_frame']:.3f} |")
    if a.note:
        L += ["", a.note.replace("\\n", "\n")]
    out.with_suffix(".md").write_text("\n".join(L) + "\n")
    print("wrote", out.with_suffix(".md"))


if __name__ == "__main__":
    raise SystemExit(main())
