"""Embedded renderer speed (results -> reports/perf_render.{md,json}).

For the issue's reference scene (200 random boxes, "boxes200") and one scene of every family
(seed 0) the camera visits ``--frames`` poses (the spawn pose,
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
from datagen.atomic import atomic_write_text  # noqa: E402


def boxes_scene(n: int = 200, seed: int = 0):
    """The reference scene of the issue's hint: `n` random boxes (0.3-3 m) scattered in a
    40 x 40 x 6 m volume over a floor, camera at its centre."""
    from datagen.scenes.builder import SceneBuilder

    rng = np.random.default_rng(seed)
    b = SceneBuilder("boxes", seed)
    mats = [b.material(f"m{k}", kind, rng.random(3) * 0.6 + 0.3, tile_m=1.0)
            for k, kind in enumerate(["paint", "wood", "tiles", "brick", "fabric", "plaster"])]
    o = b.obj("floor", "a floor", mats[2])
    b.box(o, mats[2], (0, 0, -0.05), (40, 40, 0.1))
    for i in range(n):
        c = np.array([rng.uniform(-20, 20), rng.uniform(-20, 20), rng.uniform(0, 6)])
        if np.linalg.norm(c[:2]) < 3:
            c[:2] += 3 * c[:2] / max(np.linalg.norm(c[:2]), 1e-3)
        o = b.obj("box", "a box", mats[i % len(mats)])
        b.box(o, mats[i % len(mats)], c, rng.uniform(0.3, 3.0, 3), yaw=float(rng.uniform(0, np.pi)))
    return b.build(description="200 boxes", bounds_min=(-20, -20, 0.2), bounds_max=(20, 20, 6),
                   camera_height=1.6, spawn_candidates=[(0, 0, 1.6)], spec={"family": "boxes", "seed": seed})


def _poses(c2w0: np.ndarray, n: int) -> list[np.ndarray]:
    out = []
    for k in range(n):
        a = 2 * math.pi * k / n
        Rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
        c = c2w0.copy()
        c[:3, :3] = Rz @ c2w0[:3, :3]
        out.append(c)
    return out


def _cpu_breakdown(scene, poses) -> dict:
    """Single-threaded CPU ms per 832x480 RGB+depth+shadows frame, split into the primary cast,
    the shadow (occlusion) test and everything else (ray setup, shading, copies). Single-threaded
    CPU time hardly depends on how busy the machine is, unlike wall time."""
    from datagen.render.renderer import Renderer

    W, H = RESOLUTIONS["paper"]
    r = Renderer(scene, nthreads=1, threads=1)
    from datagen.conventions import intrinsics_from_fov

    K = intrinsics_from_fov(W, H, 90.0)
    spent = {"cast": 0.0, "occlusion": 0.0}
    rs, srs = r._rs, r._shadow_rs

    class _Timed:
        def __init__(self, inner, key):
            self.inner, self.key = inner, key

        def cast_rays(self, *a, **k):
            c0 = time.process_time()
            out = self.inner.cast_rays(*a, **k)
            spent["cast"] += time.process_time() - c0
            return out

        def test_occlusions(self, *a, **k):
            c0 = time.process_time()
            out = self.inner.test_occlusions(*a, **k)
            spent["occlusion"] += time.process_time() - c0
            return out

    r.render(poses[0], K, W, H)
    r._rs, r._shadow_rs = _Timed(rs, "cast"), (_Timed(srs, "occlusion") if srs is not None else None)
    c0 = time.process_time()
    for p in poses:
        r.render(p, K, W, H, ("rgb", "depth"), shadows=True)
    total = (time.process_time() - c0) / len(poses) * 1000
    cast, occ = spent["cast"] / len(poses) * 1000, spent["occlusion"] / len(poses) * 1000
    return {"total_ms": total, "cast_ms": cast, "occlusion_ms": occ, "shading_other_ms": total - cast - occ}


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
    for fam in ["boxes200"] + list(args.families):
        scene = boxes_scene() if fam == "boxes200" else generate_scene(fam, 0)
        poses = _poses(scene.spawn_c2w, args.frames)
        be = EmbeddedBackend(scene, width=W, height=H)
        rs = be.renderer._rs

        # bare cast: time only cast_rays on the renderer's own primary-ray buffers (prebuilt)
        bufs = []
        for p in poses[:4]:
            be.renderer.render(p, be.intrinsics(), W, H, kinds=())
            bufs.append(be.renderer._camera(be.intrinsics(), W, H).rays.copy())
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
        row["cpu_breakdown_832x480_1thread"] = _cpu_breakdown(scene, poses)
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
    atomic_write_text(out.with_suffix(".json"), json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
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
    lines += ["", "Single-threaded CPU time per 832x480 RGB+depth+shadows frame (load-independent "
              "breakdown; on an idle 2-core machine Embree splits the cast and occlusion work over both "
              "cores and the shading runs in 2 row-chunk threads):", "",
              "| scene | total cpu ms | primary cast | shadow rays | shading + setup |", "|---|---:|---:|---:|---:|"]
    for r in results:
        c = r["cpu_breakdown_832x480_1thread"]
        lines.append(f"| {r['scene_id']} | {c['total_ms']:.0f} | {c['cast_ms']:.0f} | {c['occlusion_ms']:.0f} | "
                     f"{c['shading_other_ms']:.0f} |")
    fps = [r["rgbd_832x480_shadows"]["fps"] for r in results]
    lines += ["", f"Target: RGB+depth 480x832 with shadows >= 15 FPS on an idle machine. Measured here: "
              f"min {min(fps):.1f}, median {statistics.median(fps):.1f} FPS at the load above."]
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
