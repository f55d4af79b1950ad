"""Action-following validity on a task suite: RPE of the default estimator on the oracle
(ground-truth video = the estimator's noise floor), static (frame 0 repeated) and reproject
(frame 0 warped with its GT depth to every commanded pose) videos, per task and per family, plus
the pose-estimation time per video, and per family the reproject videos' hole fraction (pure-black
pixels: content of frame 0 out of view or disoccluded) next to the estimator's failed frames, which
is what bounds reproject's RPE: where most of a frame is hole there is nothing to track.

    python benchmark/perf/perf_pose_validity.py --suite-dir /tmp/h8/smoke [--estimator opencv]
        [--out reports/perf_pose_validity]     # writes .md and .json (atomic)
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def _videos(task):
    from benchmark.adapters.reproject import ReprojectModel

    gt = task.gt_frames()
    m = ReprojectModel()
    m.bind_task(task)
    m.reset(gt[0], task.prompt, task.K)
    acts = np.asarray(task.actions, dtype=np.float32)[: task.num_frames - 1]
    rep = np.concatenate([gt[:1], m.step(acts, task.gamma)], axis=0)
    return {"oracle": gt, "static": np.repeat(gt[:1], len(gt), axis=0), "reproject": rep}


def measure(suite_dir: str, estimator: str = "opencv", task_ids=None) -> list[dict]:
    from tqdm import tqdm

    from benchmark.metrics.first_view import first_view_fraction, first_view_scores
    from benchmark.metrics.rpe import compute_rpe
    from benchmark.pose_estimation.registry import run_estimator
    from benchmark.tasks.io import load_suite

    suite = load_suite(Path(suite_dir), task_ids)
    rows = []
    for task in tqdm(suite.tasks, desc="tasks"):
        fv_frac = first_view_fraction(task.K, task.gt_depth(), task.gt_poses)
        for model, frames in _videos(task).items():
            t0 = time.perf_counter()
            res = run_estimator(estimator, frames, task.K, depth0=task.gt_depth()[0])  # as scoring does
            dt = time.perf_counter() - t0
            r = compute_rpe(task.gt_poses, res.poses, task.fps, gamma=task.gamma, est_metric=bool(res.metric))
            hole = float((frames.max(axis=-1) <= 2).mean())
            row = dict(task=task.task_id, family=task.family, model=model, n=task.num_frames,
                       seconds=dt, alignment=r.alignment, scale=r.scale, failed=res.num_failed,
                       hole_frac=hole, failed_frac=res.num_failed / max(1, task.num_frames - 1))
            row.update(r.as_metrics())
            row.update(first_view_scores(fv_frac, task.gt_poses, res.poses, task.fps, r.delta_frames,
                                         gamma=task.gamma, est_metric=bool(res.metric)))
            rows.append(row)
    return rows


def _table(rows, keys) -> str:
    import pandas as pd

    df = pd.DataFrame(rows)
    piv = df.pivot_table(index="family", columns="model", values=keys, aggfunc="mean")
    lines = ["| family | " + " | ".join(f"{m} {k}" for k in keys for m in ("oracle", "static", "reproject")) + " |",
             "|---|" + "---:|" * (3 * len(keys))]
    for fam in list(piv.index) + ["ALL"]:
        vals = []
        for k in keys:
            for m in ("oracle", "static", "reproject"):
                v = df[(df.model == m)][k].mean() if fam == "ALL" else piv.loc[fam, (k, m)]
                vals.append(f"{v:.4f}" if "trans" in k or k == "ate" else f"{v:.2f}")
        lines.append(f"| {fam} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def _hole_table(rows) -> str:
    import pandas as pd

    df = pd.DataFrame(rows)
    df = df[df.model == "reproject"]
    g = df.groupby("family")[["hole_frac", "failed_frac", "rpe_rot_deg"]].mean()
    g.loc["ALL"] = df[["hole_frac", "failed_frac", "rpe_rot_deg"]].mean()
    lines = ["| family | hole fraction | failed frames | reproject rpe_rot_deg |", "|---|---:|---:|---:|"]
    lines += [f"| {f} | {r.hole_frac:.2f} | {r.failed_frac:.2f} | {r.rpe_rot_deg:.2f} |" for f, r in g.iterrows()]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite-dir", required=True)
    ap.add_argument("--estimator", default="opencv")
    ap.add_argument("--tasks", default=None, help="comma-separated task ids")
    ap.add_argument("--out", default=None, help="path prefix for .md/.json")
    a = ap.parse_args(argv)
    rows = measure(a.suite_dir, a.estimator, a.tasks.split(",") if a.tasks else None)
    keys = [k for k in ("rpe_trans", "rpe_rot_deg", "rpe_trans@1f", "rpe_rot_deg@1f", "rpe_trans@first_view",
                        "rpe_rot_deg@first_view") if k in rows[0]]
    md = [f"# Action-following validity ({a.estimator} estimator)", "",
          f"Command: `python benchmark/perf/perf_pose_validity.py --suite-dir {a.suite_dir} --estimator {a.estimator}`",
          f"on {os.cpu_count()} CPU(s). Means over the tasks of each family (``@first_view``: over the 1-s "
          "segments that still show at least half of frame 0's content, benchmark.metrics.first_view; "
          "tasks without such segments are left out of those means).", "",
          _table(rows, keys), "",
          "Reproject videos: hole fraction (pure-black pixels) and the estimator's failed frames "
          "(pose held), means over the tasks of each family:", "",
          _hole_table(rows), "",
          f"Pose estimation: {np.mean([r['seconds'] / r['n'] * 1000 for r in rows]):.1f} ms/frame mean; "
          f"oracle failures {sum(r['failed'] for r in rows if r['model'] == 'oracle')} frames."]
    text = "\n".join(md) + "\n"
    print(text)
    if a.out:
        for ext, data in ((".md", text), (".json", json.dumps(rows, indent=1, default=float))):
            tmp = a.out + ext + ".tmp"
            with open(tmp, "w") as f:
                f.write(data)
            os.replace(tmp, a.out + ext)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
