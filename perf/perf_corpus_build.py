"""End-to-end corpus build throughput (frames/s), embedded backend, 1 and 2 workers.

    python perf/perf_corpus_build.py [--out reports] [--repeats 1]

Measures ``datagen.capture.pipeline.build_corpus`` wall time into a fresh directory, so the
number INCLUDES everything a real build does: worker start-up, scene generation, trajectory
generation (collision queries), rendering RGB + depth + instance masks, labels, revisit search,
curation, captions, PNG/npy/parquet writing with checksums, manifest updates.
frames/s = frames written / wall seconds. Target (issue 3): >= 200 frames/s at 112x64 with
2 workers on the 2-core machine. Also reports a per-stage breakdown of one episode in-process.

The machine is shared; the 1-minute load average before and after each run is recorded, and
a load well above the core count means the numbers understate an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datagen.actions import poses_to_actions  # noqa: E402
from datagen.capture.config import config_from_dict, plan_episodes  # noqa: E402
from datagen.capture.episode import capture_episode  # noqa: E402
from datagen.capture.pipeline import build_corpus  # noqa: E402
from datagen.corpus.writer import write_episode  # noqa: E402
from datagen.curation.captions import caption_segments  # noqa: E402
from datagen.curation.filters import curate  # noqa: E402
from datagen.revisit_pairs import find_revisit_pairs  # noqa: E402
from datagen.scenes.library import generate_scene  # noqa: E402
from datagen.trajectories import generate  # noqa: E402

TARGET_FPS = 200.0


def config(width: int, height: int, episodes: int, duration_s: float, png_compression: int = 1) -> dict:
    return {
        "name": f"perf-{width}x{height}", "seed": 0, "fps": 16, "width": width, "height": height,
        "png_compression": png_compression,
        "scenes": [{"family": "apartment", "seeds": [1]}, {"family": "street", "seeds": [1]}],
        "episodes": [{"generator": "explore", "duration_s": duration_s, "count": episodes // 2}],
        "curation": {"min_kept_s": 1.0, "min_segment_s": 1.0},
    }


def run_build(cfg_dict: dict, workers: int) -> dict:
    cfg = config_from_dict(cfg_dict)
    tmp = Path(tempfile.mkdtemp(prefix="perf_corpus_"))
    try:
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        res = build_corpus(cfg, tmp / "c", workers=workers, progress=False)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()[0]
        if res.failed:
            raise RuntimeError(f"perf build failed: {res.failed}")
        return {"width": cfg.width, "height": cfg.height, "workers": workers, "episodes": res.built,
                "frames": res.frames, "wall_s": round(wall, 3), "frames_per_s": round(res.frames / wall, 1),
                "load_before": round(load0, 2), "load_after": round(load1, 2)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stage_breakdown(width: int, height: int, duration_s: float) -> dict:
    """Seconds per stage for one explore episode in-process (one worker), each stage timed alone."""
    import numpy as np

    from datagen.backends.embedded import EmbeddedBackend

    cfg = config_from_dict(config(width, height, 2, duration_s))
    spec = plan_episodes(cfg)[0]
    t = {}
    t0 = time.perf_counter()
    scene = generate_scene(spec.family, spec.scene_seed)
    be = EmbeddedBackend(scene, width=width, height=height, fov=cfg.fov_deg)
    t["scene_and_backend"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    traj = generate(spec.generator, be, seed=spec.seed, duration_s=spec.duration_s, fps=cfg.fps)
    t["trajectory"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    frames = be.capture_batch(list(traj.poses), ("rgb", "depth", "mask"))
    t["render_rgb_depth_mask"] = time.perf_counter() - t0
    rgb = np.stack([f.rgb for f in frames])
    depth = np.stack([f.depth for f in frames])
    mask = np.stack([f.mask for f in frames])
    c2w = np.stack([f.c2w for f in frames])
    t0 = time.perf_counter()
    poses_to_actions(c2w)
    t["labels"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    find_revisit_pairs(c2w, be.intrinsics(), width, height, depths=depth, fps=cfg.fps, **cfg.revisits)
    t["revisits"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    curate(c2w, cfg.fps, cfg.thresholds, rgb=rgb, depth=depth, mask=mask)
    t["curation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    caption_segments(mask, cfg.fps, scene.description, [o.description for o in scene.objects])
    t["captions"] = time.perf_counter() - t0
    rec = capture_episode(spec, be, cfg, scene=scene)
    tmp = Path(tempfile.mkdtemp(prefix="perf_write_"))
    try:
        t0 = time.perf_counter()
        write_episode(tmp, rec, png_compression=cfg.png_compression)
        t["write_png_npy_parquet_checksums"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = len(rec.frames)
    return {"width": width, "height": height, "frames": n,
            "seconds": {k: round(v, 4) for k, v in t.items()},
            "ms_per_frame": {k: round(1000 * v / n, 3) for k, v in t.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "reports"), help="folder for perf_corpus_build.md/.json")
    ap.add_argument("--repeats", type=int, default=1, help="runs per setting (best is reported)")
    args = ap.parse_args(argv)

    # (size, episodes, seconds each, workers, png_compression); png level 1 is the default config's
    settings = [((112, 64), 8, 10.0, 1, 1), ((112, 64), 8, 10.0, 2, 1), ((112, 64), 8, 10.0, 2, 0),
                ((832, 480), 2, 2.0, 1, 1), ((832, 480), 2, 2.0, 2, 1)]
    rows = []
    for (w, h), eps, dur, workers, png in settings:
        runs = [run_build(config(w, h, eps, dur, png), workers) for _ in range(args.repeats)]
        best = max(runs, key=lambda r: r["frames_per_s"])
        best["png_compression"] = png
        best["runs_frames_per_s"] = [r["frames_per_s"] for r in runs]
        rows.append(best)
        print(json.dumps(best), flush=True)
    stages = [stage_breakdown(112, 64, 10.0), stage_breakdown(832, 480, 2.0)]
    target = next(r for r in rows if (r["width"], r["height"], r["workers"], r["png_compression"]) == (112, 64, 2, 1))
    result = {
        "benchmark": "corpus_build", "command": "python perf/perf_corpus_build.py",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "target": {"width": 112, "height": 64, "workers": 2, "frames_per_s": TARGET_FPS,
                   "measured": target["frames_per_s"], "met": target["frames_per_s"] >= TARGET_FPS},
        "runs": rows, "stages": stages,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".perf_corpus_build.json.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, out / "perf_corpus_build.json")
    md = ["# Corpus build throughput", "",
          f"Command: `{result['command']}` ({result['date_utc']}, {result['machine']['cpus']} CPUs, shared machine).",
          "End-to-end `build_corpus` wall time into a fresh directory (worker start-up, scenes, trajectories, "
          "RGB+depth+mask rendering, labels, revisits, curation, captions, lossless PNG + npy + parquet "
          "writing with sha256 checksums, manifest). Scenes: apartment-0001 and street-0001, `explore` episodes.", "",
          "| resolution (WxH) | workers | PNG level | episodes | frames | wall s | frames/s | load avg before/after |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['width']}x{r['height']} | {r['workers']} | {r['png_compression']} | {r['episodes']} | {r['frames']} | {r['wall_s']} | "
                  f"**{r['frames_per_s']}** | {r['load_before']} / {r['load_after']} |")
    md += ["", f"Target: >= {TARGET_FPS:.0f} frames/s at 112x64 with 2 workers (default PNG level 1): measured {target['frames_per_s']} "
               f"-> {'MET' if result['target']['met'] else 'NOT MET'}.", "",
           "Per-stage time of one episode, in-process, one worker (ms per frame; the renderer's ray casting "
           "may use more than one thread):", "",
           "| resolution | " + " | ".join(stages[0]["ms_per_frame"]) + " |",
           "|---|" + "---|" * len(stages[0]["ms_per_frame"])]
    for s in stages:
        md.append(f"| {s['width']}x{s['height']} | " + " | ".join(str(v) for v in s["ms_per_frame"].values()) + " |")
    md += ["", "A load average well above the CPU count (other jobs running) means these numbers understate "
               "an idle machine.", ""]
    old = (out / "perf_corpus_build.md").read_text() if (out / "perf_corpus_build.md").exists() else ""
    if "<!-- ray-engine" in old:  # keep the local-vs-Ray sections of perf_corpus_engines.py
        md.append(old[old.index("<!-- ray-engine"):])
    tmp = out / ".perf_corpus_build.md.tmp"
    tmp.write_text("\n".join(md))
    os.replace(tmp, out / "perf_corpus_build.md")
    print(f"wrote {out / 'perf_corpus_build.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
