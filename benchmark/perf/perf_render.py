"""Embedded renderer speed (results -> reports/perf_render.{md,json}).

For one scene of every family (seed 0) the camera visits ``--frames`` poses (the spawn pose,
then yawing 360/frames degrees per frame at the same spot, so every frame sees new pixels) and
we time, per pose:

- bare ray cast: Open3D ``cast_rays`` of the same 832x480 primary rays, nothing else (the floor);
- in-process RGB+depth through :class:`datagen.backends.embedded.EmbeddedBackend.capture` at
  832x480 ("paper") and 112x64 ("train"), with and without sun shadows.

Numbers: frames per second = 1 / median wall time per frame; "cpu ms" = process CPU time per frame
(all threads), which is what the frame costs when the machine is busy with other work.
The machine's load average is recorded before and after: other processes share the 2 cores,
so the wall-clock FPS under load is lower than on an idle machine.
Target (issue 2): in-process RGB+depth at 480x832 with shadows >= 15 FPS on an idle 2-core CPU.
Run: ``python benchmark/perf/perf_render.py`` (about 1-3 minutes idle).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from datagen.backends.embedded import EmbeddedBackend  # noqa: E402
from datagen.render.presets import RESOLUTIONS  # noqa: E402
from datagen.render.renderer import _o3d  # noqa: E402
from datagen.scenes.library import FAMILIES, generate_scene  # noqa: E402


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _poses(c2w0: np.ndarray, n: int) -> list[np.ndarray]:
    out = []
    for k in range(n):
        a = 2 * math.pi * k / n
        Rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
        c = c2w0.copy()
        c[:3, :3] = Rz @ c2w0[:3, :3]
        out.append(c)
    return out


def _time(fn, poses) -> dict:
    fn(poses[0])  # warm-up (caches, allocations)
    walls, cpus = [], []
    for p in poses:
        w0, c0 = time.perf_counter(), time.process_time()
        fn(p)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    med = statistics.median(walls)
    return {"fps": 1.0 / med, "median_ms": 1000 * med, "best_ms": 1000 * min(walls),
            "cpu_ms": 1000 * statistics.median(cpus)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=12, help="poses per measurement (default 12)")
    ap.add_argument("--families", nargs="*", default=FAMILIES)
    ap.add_argument("--out", default=str(ROOT / "reports" / "perf_render"))
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    results = []
    W, H = RESOLUTIONS["paper"]
    w, h = RESOLUTIONS["train"]
    for fam in args.families:
        scene = generate_scene(fam, 0)
        poses = _poses(scene.spawn_c2w, args.frames)
        be = EmbeddedBackend(scene, width=W, height=H)
        rs = be.renderer._rs

        # bare cast: time only cast_rays on the renderer's own primary-ray buffers (prebuilt)
        bufs = []
        for p in poses[:4]:
            be.renderer.render(p, be.intrinsics(), W, H, kinds=())
            bufs.append(be.renderer._camera(be.intrinsics(), W, H)[-1].copy())
        it = iter(range(10 ** 9))
        bare_res = _time(lambda p: rs.cast_rays(_o3d(bufs[next(it) % len(bufs)]), nthreads=0), poses)
        row = {"family": fam, "scene_id": scene.scene_id, "triangles": int(len(scene.triangles)),
               "objects": len(scene.objects), "bare_cast_832x480": bare_res}
        for (rw, rh, tag) in ((W, H, "832x480"), (w, h, "112x64")):
            be.set_resolution(rw, rh)
            for sh in (True, False):
                be.shadows = sh

                def cap(p):
                    be.set_pose(p)
                    be.capture(("rgb", "depth"))

                row[f"rgbd_{tag}_{'shadows' if sh else 'noshadows'}"] = _time(cap, poses)
        be.shadows = True
        results.append(row)
        print(f"{fam:10s} tris {row['triangles']:6d}  bare {bare_res['fps']:6.1f} fps  "
              f"rgbd832 sh {row['rgbd_832x480_shadows']['fps']:5.1f} fps ({row['rgbd_832x480_shadows']['cpu_ms']:.0f} cpu ms)  "
              f"nosh {row['rgbd_832x480_noshadows']['fps']:5.1f}  rgbd112 sh {row['rgbd_112x64_shadows']['fps']:6.1f}",
              flush=True)
    load1 = os.getloadavg()
    meta = {"date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(),
            "loadavg_before": load0, "loadavg_after": load1, "frames": args.frames,
            "command": "python benchmark/perf/perf_render.py " + " ".join(argv or sys.argv[1:])}
    out = Path(args.out)
    _atomic_write(out.with_suffix(".json"), json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    lines = ["# Embedded renderer speed", "",
             f"Measured {meta['date_utc']} UTC on {meta['cpu_count']} CPU cores; load average "
             f"{load0[0]:.1f} before, {load1[0]:.1f} after (other processes shared the cores).",
             f"Command: `{meta['command'].strip()}`. Each number: median over {args.frames} poses "
             "(the spawn pose yawed in equal steps); FPS = 1 / median wall time; cpu ms = process CPU "
             "time per frame (all threads).", "",
             "| scene | triangles | bare cast 832x480 FPS | RGB+D 832x480 shadows FPS (cpu ms) | "
             "RGB+D 832x480 no shadows FPS (cpu ms) | RGB+D 112x64 shadows FPS | RGB+D 112x64 no shadows FPS |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        a, b = r["rgbd_832x480_shadows"], r["rgbd_832x480_noshadows"]
        lines.append(f"| {r['scene_id']} | {r['triangles']} | {r['bare_cast_832x480']['fps']:.1f} "
                     f"({r['bare_cast_832x480']['cpu_ms']:.0f}) | {a['fps']:.1f} ({a['cpu_ms']:.0f}) | "
                     f"{b['fps']:.1f} ({b['cpu_ms']:.0f}) | {r['rgbd_112x64_shadows']['fps']:.0f} | "
                     f"{r['rgbd_112x64_noshadows']['fps']:.0f} |")
    fps = [r["rgbd_832x480_shadows"]["fps"] for r in results]
    lines += ["", f"Target: RGB+depth 480x832 with shadows >= 15 FPS on an idle machine. Measured here: "
              f"min {min(fps):.1f}, median {statistics.median(fps):.1f} FPS at the load above."]
    _atomic_write(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
