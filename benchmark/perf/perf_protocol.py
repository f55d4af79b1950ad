"""RGB+depth frames per second through the UnrealCV protocol vs in-process, same scene and poses.

    python benchmark/perf/perf_protocol.py [--frames-paper 40] [--frames-train 300] [--repeats 3]

Measured per size (paper 832x480 and training 112x64):
  * in-process:  ``EmbeddedBackend.capture_batch(poses, ("rgb", "depth"))`` (shadows on);
  * protocol:    ``UnrealCVBackend.capture_batch`` (real ``unrealcv`` client, pipelined batches of
                 16 poses: location + rotation + ``lit png`` + ``depth npy`` per pose) against
                 ``relic datagen serve`` running as a separate process on loopback;
  * ray-cast floor: in-process depth-only captures (no shading), the bare ray-cast rate.
FPS = frames / wall seconds of the whole call (decoding included); each figure is the median of
`repeats` runs, in-process and protocol runs interleaved so machine load affects both alike.
Target: protocol >= 0.5 x in-process. Writes reports/perf_protocol.md and .json (atomically).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from datagen.backends.embedded import EmbeddedBackend  # noqa: E402
from datagen.backends.unrealcv_client import UnrealCVBackend  # noqa: E402
from datagen.conventions import look_at  # noqa: E402
from datagen.scenes.library import generate_scene, save_scene  # noqa: E402
from datagen.atomic import atomic_write_text  # noqa: E402

SIZES = {"paper": (832, 480), "train": (112, 64)}


def _poses(scene, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = scene.sample_free_point(rng, radius=0.3)
        yaw = rng.uniform(-np.pi, np.pi)
        out.append(look_at(p, p + np.array([np.cos(yaw), np.sin(yaw), rng.uniform(-0.2, 0.2)])))
    return out


def _fps(fn, n: int) -> float:
    t0 = time.perf_counter()
    frames = fn()
    dt = time.perf_counter() - t0
    assert len(frames) == n
    return n / dt


def _start_server(scene_file: Path, w: int, h: int):
    cmd = [sys.executable, "-m", "relic_cli", "datagen", "serve", "--scene", str(scene_file), "--port", "0",
           "--width", str(w), "--height", str(h), "--log-level", "warning", "--no-save"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    m = re.search(r"listening on ([\d.]+):(\d+)", proc.stdout.readline())
    if not m:
        proc.kill()
        raise RuntimeError("relic datagen serve did not start")
    return proc, m.group(1), int(m.group(2))


def measure(scene, scene_file: Path, name: str, w: int, h: int, n: int, repeats: int, seed: int) -> dict:
    poses = _poses(scene, n, seed)
    local = EmbeddedBackend(scene, w, h, 90.0, shadows=True)
    local.capture_batch(poses[:3])  # warm caches (ray directions, textures)
    proc, host, port = _start_server(scene_file, w, h)
    try:
        remote = UnrealCVBackend(host, port, timeout=120.0).connect()
        remote.capture_batch(poses[:3])
        inproc, proto, floor = [], [], []
        for _ in range(repeats):
            inproc.append(_fps(lambda: local.capture_batch(poses, ("rgb", "depth")), n))
            proto.append(_fps(lambda: remote.capture_batch(poses, ("rgb", "depth")), n))
            floor.append(_fps(lambda: local.capture_batch(poses, ("depth",)), n))
        # sanity: the protocol returns the same pixels
        a = remote.capture_batch(poses[:1], ("rgb",))[0]
        b = local.capture_batch([a.c2w], ("rgb",))[0]  # a.c2w: the pose the server rendered
        identical = bool(np.array_equal(a.rgb, b.rgb))
        remote.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    med = {k: statistics.median(v) for k, v in (("in_process", inproc), ("protocol", proto), ("raycast_floor", floor))}
    return {"size": name, "width": w, "height": h, "frames": n, "repeats": repeats,
            "fps_in_process": round(med["in_process"], 2), "fps_protocol": round(med["protocol"], 2),
            "fps_raycast_floor": round(med["raycast_floor"], 2),
            "ratio_protocol_over_in_process": round(med["protocol"] / med["in_process"], 3),
            "runs": {"in_process": [round(x, 2) for x in inproc], "protocol": [round(x, 2) for x in proto],
                     "raycast_floor": [round(x, 2) for x in floor]},
            "target_ratio": 0.5, "meets_target": bool(med["protocol"] >= 0.5 * med["in_process"]),
            "protocol_pixels_identical": identical}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="apartment")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames-paper", type=int, default=40)
    ap.add_argument("--frames-train", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "reports" / "perf_protocol"))
    args = ap.parse_args(argv)
    command = "python benchmark/perf/perf_protocol.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load_before = os.getloadavg()
    scene = generate_scene(args.family, args.seed)
    with tempfile.TemporaryDirectory() as d:
        scene_file = save_scene(scene, Path(d) / f"{scene.scene_id}.json")
        results = []
        for name, (w, h) in SIZES.items():
            n = args.frames_paper if name == "paper" else args.frames_train
            r = measure(scene, Path(scene_file), name, w, h, n, args.repeats, args.seed)
            print(json.dumps(r), flush=True)
            results.append(r)
    report = {"command": command.strip(), "scene": scene.scene_id, "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "loadavg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
              "shadows": True, "kinds": ["rgb", "depth"], "results": results}
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    lines = [
        "# UnrealCV protocol throughput (RGB + depth)", "",
        f"Command: `{report['command']}`  ", f"Date (UTC): {report['date_utc']}; scene `{scene.scene_id}`; "
        f"{os.cpu_count()} CPUs shared with other jobs (1-min load average before/after: "
        f"{report['machine']['loadavg_1min_before_after']}); shadows on.", "",
        "In-process = `EmbeddedBackend.capture_batch`; protocol = `UnrealCVBackend.capture_batch` (real `unrealcv` "
        "client, pipelined, `lit png` + `depth npy` per pose) against `relic datagen serve` in its own process on "
        "loopback; ray-cast floor = in-process depth-only captures. FPS = frames / wall time, median of "
        f"{args.repeats} interleaved runs.", "",
        "| size | frames | in-process FPS | protocol FPS | ratio | target >= 0.5 | ray-cast floor FPS | pixels identical |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in results:
        lines.append(f"| {r['size']} {r['width']}x{r['height']} | {r['frames']} | {r['fps_in_process']} | {r['fps_protocol']} | "
                     f"{r['ratio_protocol_over_in_process']} | {'yes' if r['meets_target'] else 'NO'} | "
                     f"{r['fps_raycast_floor']} | {r['protocol_pixels_identical']} |")
    lines += ["", "Per-run FPS: " + "; ".join(f"{r['size']}: {r['runs']}" for r in results), ""]
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines))
    print(f"wrote {out.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
