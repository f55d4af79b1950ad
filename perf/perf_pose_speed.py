"""Speed of the default pose estimator as scoring runs it (reference depth), in frames per CPU-second.

CPU time (``time.process_time`` of one single-threaded process) rather than wall time, so the number
means the same on a machine shared with other jobs; wall time is printed beside it with the load
average. One full-suite model is 46,400 frames: divide by this rate for its CPU-seconds, and by the
number of scoring processes (``relic bench run`` scores tasks in a pool, one per core) for wall time.

    OMP_NUM_THREADS=1 python perf/perf_pose_speed.py TASK_DIR [TASK_DIR ...] [--estimator direct]
(TASK_DIR: SUITE/tasks/<task_id>, e.g. of `relic bench tasks --suite full --out SUITE`, 224x128)
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from benchmark.pose_estimation.registry import run_estimator
from benchmark.tasks.io import load_task


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("task_dirs", nargs="+", type=Path)
    ap.add_argument("--estimator", default="direct")
    args = ap.parse_args(argv)
    n_all = cpu_all = wall_all = 0.0
    for d in args.task_dirs:
        t = load_task(d)
        gt, depth = t.gt_frames(), t.gt_depth()
        c0, w0 = time.process_time(), time.perf_counter()
        run_estimator(args.estimator, gt, t.K, depth0=depth[0], depth_ref=depth, ref_poses=t.gt_poses)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        n_all, cpu_all, wall_all = n_all + len(gt), cpu_all + cpu, wall_all + wall
        print(f"{t.task_id} {gt.shape[2]}x{gt.shape[1]}: {len(gt) / cpu:.1f} frames/CPU-s, "
              f"{len(gt) / wall:.1f} frames/wall-s", flush=True)
    print(f"{int(n_all)} frames: {n_all / cpu_all:.1f} frames per CPU-second, {n_all / wall_all:.1f} per wall-second; "
          f"one full-suite model (46,400 frames) {46400 / (n_all / cpu_all) / 60:.1f} CPU-minutes; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
