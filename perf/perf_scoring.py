"""Scoring throughput: frames/s of benchmark.scoring.score_task on a 20-s 480x832 video (320 frames).

Renders one ground-truth task with the embedded renderer (a walk / look-away-and-back / veer script
in a held-out-style scene; rendering is NOT timed), then times, after a warm-up on a short clip
(imports, LPIPS load):
  - score_task(..., lpips=False)    the whole scoring pipeline without LPIPS (target: > 16 frames/s)
  - score_task(..., lpips=True)     the same with LPIPS, or "unavailable: <why>" when its backbone
                                    weights are not cached (nothing is invented)
  - the pose estimator alone        (frames/s)
Each scoring is run on the ground-truth frames ("oracle"), so every stage does its full work.
Writes reports/perf_scoring.json and reports/perf_scoring.md (atomically).

    python perf/perf_scoring.py [--seconds 20] [--width 832] [--height 480] [--out reports]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchmark.tasks.task import REVISIT_COLUMNS, Task
from datagen.atomic import atomic_write_text
from datagen.revisit_pairs import find_revisit_pairs
from datagen.scenes.library import generate_scene

TARGET_FPS = 16.0


def script_poses(start: np.ndarray, n: int) -> np.ndarray:
    """Camera script cycling through walk (3 s), look away (1.5 s), look back (1.5 s), veer (2 s)."""
    from scipy.spatial.transform import Rotation

    cycle = [(48, 0.05, 0.0, 0.0), (24, 0.0, 0.0, 4.0), (24, 0.0, 0.0, -4.0), (32, 0.03, 0.01, -0.8)]
    P, c = [start.copy()], start.copy()
    while len(P) < n:
        for k, dz, dx, yaw in cycle:
            for _ in range(k):
                T = np.eye(4)
                T[:3, :3] = Rotation.from_euler("y", yaw, degrees=True).as_matrix()
                T[:3, 3] = [dx, 0.0, dz]
                c = c @ T
                P.append(c.copy())
    return np.array(P[:n])


def build_task(family: str, seed: int, width: int, height: int, fps: float, seconds: float,
               cache: Path | None = None):
    n = int(round(seconds * fps))
    f = None if cache is None else cache / f"perf_gt_{family}{seed}_{width}x{height}_{n}.npz"
    if f is not None and f.is_file():
        z = np.load(f)
        rgb, depth, poses, K = z["rgb"], z["depth"], z["poses"], z["K"]
        scene_id = str(z["scene_id"])
    else:
        from datagen.backends.embedded import EmbeddedBackend  # deferred: it imports open3d and numba

        scene = generate_scene(family, seed)
        be = EmbeddedBackend(scene, width=width, height=height, fov=90.0)
        poses = script_poses(scene.spawn_c2w, n)
        frames = be.capture_batch(list(poses), kinds=("rgb", "depth"))
        rgb = np.stack([fr.rgb for fr in frames])
        depth = np.stack([fr.depth for fr in frames])
        K = be.intrinsics()
        scene_id = scene.scene_id
        if f is not None:
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_suffix(".tmp.npz")
            np.savez(tmp, rgb=rgb, depth=depth, poses=poses, K=K, scene_id=scene_id)
            os.replace(tmp, f)
    rv = find_revisit_pairs(poses, K, width, height, depths=depth, fps=fps)[REVISIT_COLUMNS].reset_index(drop=True)
    return Task(task_id=f"perf_{family}{seed}", family="perf", scene_id=scene_id, prompt="", K=K,
                width=width, height=height, fps=fps, actions=np.zeros((n, 13), np.float32), gamma=0.05,
                gt_poses=poses, revisits=rv, _frames_loader=lambda: rgb, _depth_loader=lambda: depth)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=16.0)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--scene", default="street:1", help="FAMILY:SEED of the rendered scene")
    ap.add_argument("--out", type=Path, default=Path("reports"))
    ap.add_argument("--tag", default="", help="suffix for the report names (e.g. _device)")
    ap.add_argument("--cache", type=Path, default=None, help="folder to cache the rendered ground truth in")
    args = ap.parse_args(argv)

    from benchmark.metrics.image_quality import get_lpips
    from benchmark.pose_estimation.registry import run_estimator
    from benchmark.scoring import DEFAULT_ESTIMATOR, score_task

    fam, seed = args.scene.split(":")
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    task = build_task(fam, int(seed), args.width, args.height, args.fps, args.seconds, args.cache)
    frames = task.gt_frames()
    task.gt_depth()
    render_s = time.perf_counter() - t0
    n = task.num_frames
    print(f"rendered {n} frames {args.width}x{args.height} in {render_s:.1f}s; {len(task.revisits)} revisit pairs",
          flush=True)

    # warm-up on a short clip (imports, lazy modules); not timed
    short = Task(**{**{k: getattr(task, k) for k in ("task_id", "family", "scene_id", "prompt", "K", "width",
                                                     "height", "fps", "gamma")},
                    "actions": task.actions[:24], "gt_poses": task.gt_poses[:24], "revisits": task.revisits[:0],
                    "_frames_loader": lambda: frames[:24], "_depth_loader": lambda: task.gt_depth()[:24]})
    score_task(short, frames[:24], lpips=True)

    results: dict = {"frames": n, "width": args.width, "height": args.height, "seconds": args.seconds,
                     "scene": args.scene, "revisit_pairs": int(len(task.revisits)), "target_fps": TARGET_FPS,
                     "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                     "loadavg_before": list(load0), "render_s": render_s,
                     "command": "python perf/perf_scoring.py " + " ".join(argv or sys.argv[1:])}

    t, c = time.perf_counter(), time.process_time()
    sc = score_task(task, frames, lpips=False)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    results["no_lpips"] = {"wall_s": wall, "fps": n / wall, "cpu_s": cpu, "fps_per_cpu_core": n / cpu,
                           "stages_s": sc.timings_s,
                           "meets_target": bool(n / wall > TARGET_FPS),
                           "revisit_pairs_scored": int(sc.metrics["revisit_pairs"])}
    print(f"scoring without LPIPS: {wall:.1f}s = {n / wall:.1f} frames/s", flush=True)

    lp = get_lpips("alex")
    if lp.available:
        t = time.perf_counter()
        sc2 = score_task(task, frames, lpips=True)
        wall2 = time.perf_counter() - t
        results["with_lpips"] = {"wall_s": wall2, "fps": n / wall2, "stages_s": sc2.timings_s, "status": lp.status}
        print(f"scoring with LPIPS: {wall2:.1f}s = {n / wall2:.1f} frames/s", flush=True)
    else:
        results["with_lpips"] = {"wall_s": None, "fps": None, "status": lp.status}
        print(f"scoring with LPIPS: not measured, LPIPS {lp.status}", flush=True)

    t, c = time.perf_counter(), time.process_time()
    depth = task.gt_depth()
    est = run_estimator(DEFAULT_ESTIMATOR, frames, task.K, depth0=depth[0], depth_ref=depth, ref_poses=task.gt_poses)
    pw, pcpu = time.perf_counter() - t, time.process_time() - c
    results["pose_estimation"] = {"wall_s": pw, "fps": n / pw, "cpu_s": pcpu, "fps_per_cpu_core": n / pcpu,
                                  "estimator": DEFAULT_ESTIMATOR,
                                  "failed_frames": est.num_failed}
    print(f"pose estimation alone: {pw:.1f}s = {n / pw:.1f} frames/s", flush=True)
    results["loadavg_after"] = list(os.getloadavg())

    out = args.out
    atomic_write_text(out / f"perf_scoring{args.tag}.json", json.dumps(results, indent=2) + "\n")
    nl = results["no_lpips"]
    wl = results["with_lpips"]
    md = [f"# Scoring throughput ({args.width}x{args.height}, {n} frames = {args.seconds:g} s at {args.fps:g} fps)",
          "",
          f"Command: `{results['command']}`  ",
          f"Machine: {results['cpu_count']} CPU cores, {results['platform']}; load average before "
          f"{load0[0]:.1f}, after {results['loadavg_after'][0]:.1f} (other jobs share the cores).",
          "",
          "| what | wall (s) | frames/s (wall) | CPU s | frames per CPU-second | note |",
          "|---|---:|---:|---:|---:|---|",
          f"| score_task, no LPIPS | {nl['wall_s']:.1f} | {nl['fps']:.1f} | {nl['cpu_s']:.1f} | "
          f"{nl['fps_per_cpu_core']:.1f} | target > {TARGET_FPS:g} frames/s (wall): "
          f"{'met' if nl['meets_target'] else 'NOT met'}; {nl['revisit_pairs_scored']} revisit pairs scored |",
          (f"| score_task, with LPIPS | {wl['wall_s']:.1f} | {wl['fps']:.1f} | - | - | {wl['status']} |" if wl["fps"]
           else f"| score_task, with LPIPS | - | - | - | - | not measured: LPIPS {wl['status']} |"),
          f"| pose estimation alone (opencv) | {pw:.1f} | {n / pw:.1f} | {pcpu:.1f} | {n / pcpu:.1f} | "
          f"{est.num_failed} failed frames |",
          "",
          "Frames per CPU-second = frames / process CPU time (all threads): what one dedicated core "
          "delivers, independent of the other jobs sharing the machine.",
          "",
          "Stage times of the no-LPIPS scoring (s): " + ", ".join(f"{k} {v:.2f}" for k, v in nl["stages_s"].items()),
          "",
          f"Ground truth rendered with the embedded renderer ({args.scene}) in {render_s:.0f} s (not timed); "
          f"{results['revisit_pairs']} revisit pairs found, at most 24 scored.",
          ""]
    atomic_write_text(out / f"perf_scoring{args.tag}.md", "\n".join(md))
    print(f"wrote {out / f'perf_scoring{args.tag}.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
