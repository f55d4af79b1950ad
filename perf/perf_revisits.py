"""Speed of revisit-pair detection, trajectory generation and action labelling.

    python perf/perf_revisits.py [--out reports] [--repeats 5]

Measures (median of ``--repeats`` wall-clock runs, single process):
  * ``find_revisit_pairs`` on a 1000-frame episode (62.5 s at 16 FPS: walk a loop and pan, so
    there are many candidates) at 112x64, with depth (exact planar depth of a box room) and without
    (frustum approximation). Target (issue 3 brief): "well under a second or two".
  * ``poses_to_actions`` + ``actions_to_poses`` on the same 1000 poses.
  * ``datagen.trajectories.generate`` for every generator, 20 s at 16 FPS (320 poses), on the
    embedded backend of scene apartment/0 (collision queries included, no rendering).
Writes ``reports/perf_revisits.md`` and ``.json`` (atomically). The machine is shared: the 1-min
load average is recorded; a load well above the core count means the numbers understate it.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datagen import conventions as cv  # noqa: E402
from datagen.actions import actions_to_poses, poses_to_actions  # noqa: E402
from datagen.revisit_pairs import find_revisit_pairs  # noqa: E402
from datagen.scenes.library import generate_scene  # noqa: E402
from datagen.trajectories import GENERATORS, generate  # noqa: E402


def _episode(n: int = 1000):
    poses = []
    for i in range(n):
        t = i / n
        ang = 2 * np.pi * 2 * t  # two laps of a 3 m circle, looking along the path, then some pan
        pos = np.array([5 + 3 * np.cos(ang), 5 + 3 * np.sin(ang), 1.6])
        yaw = -np.degrees(ang) - 90 + 40 * np.sin(6 * np.pi * t)
        c = np.eye(4)
        c[:3, :3] = cv.rotator_to_rotation(5 * np.sin(10 * np.pi * t), yaw, 0.0)
        c[:3, 3] = pos
        poses.append(c)
    return np.stack(poses)


def _box_depth(c2w, K, w, h, lo=(0, 0, 0), hi=(10, 10, 3)):
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.linalg.inv(K) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    d = c2w[:3, :3] @ rays
    o = c2w[:3, 3][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (np.array(lo, float)[:, None] - o) / d
        t2 = (np.array(hi, float)[:, None] - o) / d
    t = np.minimum(np.where(t1 > 0, t1, np.inf), np.where(t2 > 0, t2, np.inf)).min(0)
    return t.reshape(h, w).astype(np.float32)


def _median_time(fn, repeats):
    ts = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "reports"))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    from datagen.backends.embedded import EmbeddedBackend

    load0 = os.getloadavg()[0]
    w, h = 112, 64
    K = cv.intrinsics_from_fov(w, h, 90.0)
    poses = _episode(1000)
    depths = np.stack([_box_depth(p, K, w, h) for p in poses])
    res = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load1_before": load0}}
    t_depth, df_d = _median_time(lambda: find_revisit_pairs(poses, K, w, h, depths, fps=16), args.repeats)
    t_frust, df_f = _median_time(lambda: find_revisit_pairs(poses, K, w, h, None, fps=16), args.repeats)
    res["find_revisit_pairs_1000"] = {"with_depth_s": t_depth, "pairs_with_depth": int(len(df_d)),
                                      "frustum_s": t_frust, "pairs_frustum": int(len(df_f))}
    t_lab, (acts, gamma) = _median_time(lambda: poses_to_actions(poses), args.repeats)
    t_inv, _ = _median_time(lambda: actions_to_poses(acts, gamma, poses[0]), args.repeats)
    res["labels_1000"] = {"poses_to_actions_s": t_lab, "actions_to_poses_s": t_inv}
    be = EmbeddedBackend(generate_scene("apartment", 0), width=w, height=h)
    gen = {}
    for name in GENERATORS:
        t, _ = _median_time(lambda: generate(name, be, seed=1, duration_s=20.0, fps=16), max(1, args.repeats // 2))
        gen[name] = t
    res["generate_20s_s"] = gen
    res["machine"]["load1_after"] = os.getloadavg()[0]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Revisit detection, labels and trajectory generation speed",
        "",
        f"Command: `python perf/perf_revisits.py --repeats {args.repeats}` (median wall time, one process).",
        f"Machine: {res['machine']['cpus']} CPUs, Python {res['machine']['python']}, 1-min load "
        f"{load0:.2f} before / {res['machine']['load1_after']:.2f} after (shared machine).",
        "",
        "| measurement | seconds | notes |",
        "|---|---:|---|",
        f"| find_revisit_pairs, 1000 frames, 112x64, with depth | {t_depth:.3f} | {len(df_d)} pairs; target well under 1-2 s |",
        f"| find_revisit_pairs, 1000 frames, no depth (frustum) | {t_frust:.3f} | {len(df_f)} pairs |",
        f"| poses_to_actions, 1000 frames | {t_lab:.3f} | |",
        f"| actions_to_poses, 1000 frames | {t_inv:.3f} | |",
    ]
    for name, t in gen.items():
        lines.append(f"| generate {name}, 20 s @ 16 FPS (320 poses) | {t:.3f} | embedded backend, apartment/0 |")
    for suffix, text in ((".md", "\n".join(lines) + "\n"), (".json", json.dumps(res, indent=2) + "\n")):
        path = out / f"perf_revisits{suffix}"
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
