"""Embedded renderer speed (results -> reports/perf_render.{md,json}).

For the issue's reference scene (200 random boxes, "boxes200") and one scene of every family
(seed 0) the camera visits ``--frames`` poses (the spawn pose, then yawing 360/frames degrees per
frame at the same spot, so every frame sees new pixels) and we time, per pose:

- bare ray cast: Open3D ``cast_rays`` of the same 832x480 primary rays, nothing else (the floor);
- in-process RGB+depth through :class:`datagen.backends.embedded.EmbeddedBackend.capture` at
  832x480 ("paper") with sun shadows.

The two are timed INTERLEAVED (bare cast of pose k, then the RGB+depth+shadows frame of pose k,
``--rounds`` passes over the poses), so load from other processes hits both alike; the ratio
RGB+D+shadows FPS / bare-cast FPS of that run is the number that matters on a shared machine
(issue 24 bar: >= 0.6 on every family). Then, not interleaved: RGB+depth without shadows and at
112x64 ("train"), and a single-threaded CPU breakdown per stage of a 832x480 RGB+D+shadows frame
(primary rays, Embree primary cast, surface shading, shadow-ray selection, Embree shadow rays,
compose, the rest: per-frame triangle table, fog exp (numpy), copies, Python), measured with
``time.process_time`` around each stage (single-threaded CPU time hardly depends on load).

FPS = 1 / median wall time per frame; "cpu ms" = process CPU time per frame (all threads). The
1-minute load average (``os.getloadavg``, as ``uptime`` shows it) is recorded before and after.
Run: ``nice -n 10 python perf/perf_render.py`` (about 2-4 minutes idle; measure when
``uptime`` shows the lowest load).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from datagen.atomic import atomic_write_text  # noqa: E402
from datagen.backends.embedded import EmbeddedBackend  # noqa: E402
from datagen.conventions import intrinsics_from_fov  # noqa: E402
from datagen.render import kernels  # noqa: E402
from datagen.render.presets import RESOLUTIONS  # noqa: E402
from datagen.render.renderer import Renderer, _o3d  # noqa: E402
from datagen.scenes.builder import SceneBuilder  # noqa: E402
from datagen.scenes.library import FAMILIES, generate_scene  # noqa: E402


def boxes_scene(n: int = 200, seed: int = 0):
    """The reference scene of the issue's hint: `n` random boxes (0.3-3 m) scattered in a
    40 x 40 x 6 m volume over a floor, camera at its centre."""
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


class _StageClock:
    """Process CPU time per stage of Renderer.render: wraps the Embree calls and the kernels."""

    KERNELS = {"primary_rays": "primary rays", "shade_surface": "surface shading",
               "shadow_rays": "shadow-ray selection", "compose": "compose"}

    def __init__(self, renderer):
        self.kernels = kernels
        self.spent = {k: 0.0 for k in ("primary rays", "primary cast", "surface shading", "shadow-ray selection",
                                       "shadow rays", "compose")}
        self._saved = {name: getattr(kernels, name) for name in self.KERNELS}
        self.renderer = renderer
        self._rs, self._srs = renderer._rs, renderer._shadow_rs

    def _wrap(self, fn, key):
        def timed(*a, **k):
            c0 = time.process_time()
            out = fn(*a, **k)
            self.spent[key] += time.process_time() - c0
            return out
        return timed

    def __enter__(self):
        for name, key in self.KERNELS.items():
            setattr(self.kernels, name, self._wrap(self._saved[name], key))
        clock = self

        class _Timed:
            def __init__(self, inner):
                self.inner = inner

            def cast_rays(self, *a, **k):
                return clock._wrap(self.inner.cast_rays, "primary cast")(*a, **k)

            def test_occlusions(self, *a, **k):
                return clock._wrap(self.inner.test_occlusions, "shadow rays")(*a, **k)

        self.renderer._rs = _Timed(self._rs)
        self.renderer._shadow_rs = _Timed(self._srs) if self._srs is not None else None
        return self

    def __exit__(self, *exc):
        for name, fn in self._saved.items():
            setattr(self.kernels, name, fn)
        self.renderer._rs, self.renderer._shadow_rs = self._rs, self._srs


def _cpu_breakdown(scene, poses) -> dict:
    """Single-threaded CPU ms per 832x480 RGB+depth+shadows frame, per stage (see the module
    docstring); "other" = total - stages."""
    W, H = RESOLUTIONS["paper"]
    r = Renderer(scene, nthreads=1, threads=1)
    K = intrinsics_from_fov(W, H, 90.0)
    r.render(poses[0], K, W, H)
    with _StageClock(r) as clock:
        c0 = time.process_time()
        for p in poses:
            r.render(p, K, W, H, ("rgb", "depth"), shadows=True)
        total = (time.process_time() - c0) / len(poses) * 1000
    out = {"total_ms": total}
    for k, v in clock.spent.items():
        out[k] = v / len(poses) * 1000
    out["other"] = total - sum(v for k, v in out.items() if k != "total_ms")
    return out


def _summary(walls, cpus) -> dict:
    med = statistics.median(walls)
    return {"fps": 1.0 / med, "median_ms": 1000 * med, "best_ms": 1000 * min(walls),
            "cpu_ms": 1000 * statistics.median(cpus)}


def _time(fn, poses, rounds: int = 1) -> dict:
    fn(poses[0])  # warm-up (caches, allocations)
    walls, cpus = [], []
    for _ in range(rounds):
        for p in poses:
            w0, c0 = time.perf_counter(), time.process_time()
            fn(p)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    return _summary(walls, cpus)


def _interleaved(fns: dict, poses, rounds: int) -> dict:
    """Time each of `fns` on every pose, alternating between them pose by pose."""
    for fn in fns.values():
        fn(0)
    walls = {k: [] for k in fns}
    cpus = {k: [] for k in fns}
    for _ in range(rounds):
        for i in range(len(poses)):
            for k, fn in fns.items():
                w0, c0 = time.perf_counter(), time.process_time()
                fn(i)
                walls[k].append(time.perf_counter() - w0)
                cpus[k].append(time.process_time() - c0)
    return {k: _summary(walls[k], cpus[k]) for k in fns}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


BAR_RATIO = 0.6  # issue 24: RGB+D+shadows at 832x480 >= 0.6 x the bare cast's FPS, every family


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=12, help="poses per measurement (default 12)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved passes over the poses (default 2)")
    ap.add_argument("--families", nargs="*", default=FAMILIES)
    ap.add_argument("--out", default=str(ROOT / "reports" / "perf_render"))
    args = ap.parse_args(argv)
    uptime0, load0 = _uptime(), os.getloadavg()
    print(uptime0, flush=True)
    results = []
    W, H = RESOLUTIONS["paper"]
    w, h = RESOLUTIONS["train"]
    for fam in ["boxes200"] + list(args.families):
        scene = boxes_scene() if fam == "boxes200" else generate_scene(fam, 0)
        poses = _poses(scene.spawn_c2w, args.frames)
        be = EmbeddedBackend(scene, width=W, height=H)
        rs = be.renderer._rs
        K = be.intrinsics()
        # the renderer's own primary rays of every pose, built once (the bare cast casts only)
        bufs = []
        for p in poses:
            be.renderer.render(p, K, W, H, kinds=())
            bufs.append(be.renderer._camera(K, W, H).rays.copy())

        def bare(i):
            rs.cast_rays(_o3d(bufs[i]), nthreads=0)

        def rgbd(i):
            be.set_pose(poses[i])
            be.capture(("rgb", "depth"))

        be.set_resolution(W, H)
        be.shadows = True
        pair = _interleaved({"bare": bare, "rgbd": rgbd}, poses, args.rounds)
        bufs.clear()
        row = {"family": fam, "scene_id": scene.scene_id, "triangles": int(len(scene.triangles)),
               "objects": len(scene.objects), "bare_cast_832x480": pair["bare"],
               "rgbd_832x480_shadows": pair["rgbd"],
               "ratio_rgbd_shadows_over_bare_fps": pair["rgbd"]["fps"] / pair["bare"]["fps"],
               "ratio_cpu_bare_over_rgbd_shadows": pair["bare"]["cpu_ms"] / pair["rgbd"]["cpu_ms"]}

        def cap(p):
            be.set_pose(p)
            be.capture(("rgb", "depth"))

        be.shadows = False
        row["rgbd_832x480_noshadows"] = _time(cap, poses)
        be.set_resolution(w, h)
        for sh in (True, False):
            be.shadows = sh
            row[f"rgbd_112x64_{'shadows' if sh else 'noshadows'}"] = _time(cap, poses, rounds=3)
        be.shadows = True
        row["cpu_breakdown_832x480_1thread"] = _cpu_breakdown(scene, poses)
        results.append(row)
        print(f"{fam:10s} tris {row['triangles']:6d}  bare {pair['bare']['fps']:6.1f} fps  "
              f"rgbd832 sh {pair['rgbd']['fps']:5.1f} fps ({pair['rgbd']['cpu_ms']:.0f} cpu ms)  "
              f"ratio {row['ratio_rgbd_shadows_over_bare_fps']:.2f}  "
              f"nosh {row['rgbd_832x480_noshadows']['fps']:5.1f}  rgbd112 sh {row['rgbd_112x64_shadows']['fps']:6.1f}",
              flush=True)
    uptime1, load1 = _uptime(), os.getloadavg()
    print(uptime1, flush=True)
    meta = {"date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(),
            "loadavg_before": load0, "loadavg_after": load1, "uptime_before": uptime0, "uptime_after": uptime1,
            "frames": args.frames, "rounds": args.rounds, "bar_ratio": BAR_RATIO,
            "command": "python perf/perf_render.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    ratios = [r["ratio_rgbd_shadows_over_bare_fps"] for r in results]
    lines = ["# Embedded renderer speed", "",
             f"Measured {meta['date_utc']} UTC on {meta['cpu_count']} CPU cores shared with other jobs; "
             f"load average (1, 5, 15 min) {load0[0]:.2f}, {load0[1]:.2f}, {load0[2]:.2f} before and "
             f"{load1[0]:.2f}, {load1[1]:.2f}, {load1[2]:.2f} after.",
             f"`uptime` before: `{uptime0}`; after: `{uptime1}`.",
             f"Command: `{meta['command'].strip()}`.", "",
             "## RGB+depth+shadows vs the bare ray cast (same run, interleaved)", "",
             f"Bare cast and RGB+D+shadows frames of the same {args.frames} poses (the spawn pose yawed in equal "
             f"steps), alternated pose by pose, {args.rounds} passes; FPS = 1 / median wall time; cpu ms = "
             f"process CPU time per frame (all threads). Bar (issue 24): ratio >= {BAR_RATIO} on every family.", "",
             "| scene | triangles | bare cast 832x480 FPS (cpu ms) | RGB+D+shadows 832x480 FPS (cpu ms) | "
             "FPS ratio | bar | cpu-ms ratio bare / RGB+D |",
             "|---|---:|---:|---:|---:|---|---:|"]
    for r in results:
        a, b = r["bare_cast_832x480"], r["rgbd_832x480_shadows"]
        ok = r["ratio_rgbd_shadows_over_bare_fps"] >= BAR_RATIO
        lines.append(f"| {r['scene_id']} | {r['triangles']} | {a['fps']:.1f} ({a['cpu_ms']:.0f}) | "
                     f"{b['fps']:.1f} ({b['cpu_ms']:.0f}) | {r['ratio_rgbd_shadows_over_bare_fps']:.2f} | "
                     f"{'yes' if ok else 'NO'} | {r['ratio_cpu_bare_over_rgbd_shadows']:.2f} |")
    lines += ["", f"Lowest ratio {min(ratios):.2f}; bar {'met' if min(ratios) >= BAR_RATIO else 'NOT met'} "
              "in this run.", "",
              "## Other sizes and no shadows (not interleaved)", "",
              "| scene | RGB+D 832x480 no shadows FPS (cpu ms) | RGB+D 112x64 shadows FPS | RGB+D 112x64 no shadows FPS |",
              "|---|---:|---:|---:|"]
    for r in results:
        b = r["rgbd_832x480_noshadows"]
        lines.append(f"| {r['scene_id']} | {b['fps']:.1f} ({b['cpu_ms']:.0f}) | {r['rgbd_112x64_shadows']['fps']:.0f} | "
                     f"{r['rgbd_112x64_noshadows']['fps']:.0f} |")
    stages = list(results[0]["cpu_breakdown_832x480_1thread"])[1:]
    lines += ["", "## CPU ms per stage, single-threaded (Embree 1 thread, shading 1 thread)", "",
              "Per 832x480 RGB+depth+shadows frame, mean over the poses. On an idle 2-core machine Embree "
              "splits the casts over both cores and the shading runs on row chunks in 2 threads.", "",
              "| scene | total | " + " | ".join(stages) + " | cast share |",
              "|---|---:|" + "---:|" * len(stages) + "---:|"]
    for r in results:
        c = r["cpu_breakdown_832x480_1thread"]
        lines.append(f"| {r['scene_id']} | {c['total_ms']:.1f} | " + " | ".join(f"{c[k]:.1f}" for k in stages)
                     + f" | {c['primary cast'] / c['total_ms']:.2f} |")
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')} and .json")
    return 0 if min(ratios) >= BAR_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
