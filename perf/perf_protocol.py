"""Capture speed through the UnrealCV protocol vs in-process, same scene, poses and image kinds.

    nice -n 10 python perf/perf_protocol.py [--frames-paper 40] [--frames-train 300] [--repeats 3]

``relic datagen serve`` runs as a separate process on loopback; the client is the real ``unrealcv``
package. Measured, each protocol figure next to its in-process twin, the two interleaved run by run
(so load from other processes hits both alike):

* per frame (832x480, issue 24): one ``vset /camera/0/pose`` and one ``vget`` per frame, a new pose
  every frame, each request waiting for its reply (``Client.request``), the reply decoded to an
  array: ``lit png``, ``lit bmp``, ``depth npy``. In-process twin: ``EmbeddedBackend.set_pose`` +
  ``capture`` of the same kind at the same (rounded) poses. Every frame is timed, protocol and
  in-process frames alternating; FPS = 1 / median frame time. Bar: lit png >= 14 FPS and >= 0.85 x
  in-process in the same run.
* pipelined (832x480 and 112x64): ``UnrealCVBackend.capture_batch`` (batches of 16 poses:
  location + rotation + ``lit png`` + ``depth npy`` per pose) vs ``EmbeddedBackend.capture_batch``
  RGB+depth; ray-cast floor = in-process depth-only captures. Target: protocol >= 0.5 x in-process.

Pipelined FPS = frames / wall seconds of the whole batch loop (decoding included), median of
`repeats` runs. CPU ms per frame: the benchmark process (client: its receive thread and decoding;
in-process: rendering), the server process (from /proc: rendering, encoding, sending), and the
encoder/decoder stages alone on a rendered frame. The 1-minute load average (as ``uptime`` shows
it) is recorded before and after; measure when it is lowest. Writes reports/perf_protocol.md and
.json (atomically).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datagen import conventions as cv  # noqa: E402
from datagen.atomic import atomic_write_text  # noqa: E402
from datagen.backends.embedded import EmbeddedBackend  # noqa: E402
from datagen.backends.unrealcv_client import UnrealCVBackend  # noqa: E402
from datagen.conventions import look_at  # noqa: E402
from datagen.scenes.library import generate_scene, save_scene  # noqa: E402
from datagen.unrealcv_server import encoding  # noqa: E402

SIZES = {"paper": (832, 480), "train": (112, 64)}
PER_FRAME = {"lit png": ("vget /camera/0/lit png", "rgb"), "lit bmp": ("vget /camera/0/lit bmp", "rgb"),
             "depth npy": ("vget /camera/0/depth npy", "depth")}
BAR_FPS, BAR_RATIO = 14.0, 0.85  # issue 24, lit png 832x480 per frame


def _poses(scene, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = scene.sample_free_point(rng, radius=0.3)
        yaw = rng.uniform(-np.pi, np.pi)
        out.append(look_at(p, p + np.array([np.cos(yaw), np.sin(yaw), rng.uniform(-0.2, 0.2)])))
    return out


def _pose_command(c2w: np.ndarray) -> tuple[str, np.ndarray]:
    """``vset /camera/0/pose ...`` for c2w and the c2w the server will hold (the numbers sent)."""
    loc, rot = cv.c2w_to_ue_pose(c2w)
    nums = [f"{v:.6f}" for v in (*loc, *rot)]
    used = cv.ue_pose_to_c2w([float(v) for v in nums[:3]], [float(v) for v in nums[3:]])
    return "vset /camera/0/pose " + " ".join(nums), used


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Run:
    """Wall seconds, benchmark-process CPU seconds and server CPU seconds of one loop."""

    def __init__(self, server_pid: int | None):
        self.pid = server_pid

    def __call__(self, fn, n: int) -> dict:
        s0 = _proc_cpu_s(self.pid) if self.pid else 0.0
        c0, t0 = time.process_time(), time.perf_counter()
        got = fn()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        ds = (_proc_cpu_s(self.pid) - s0) if self.pid else 0.0
        assert got == n, (got, n)
        return {"fps": n / dt, "cpu_ms": 1000 * dc / n, "server_cpu_ms": 1000 * ds / n}


def _med(runs: list[dict]) -> dict:
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}


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


def _stop_server(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_per_frame(scene, scene_file: Path, n: int, repeats: int, seed: int) -> dict:
    """One vset + one vget per frame, waiting for each reply, vs in-process (832x480)."""
    from unrealcv import Client

    w, h = SIZES["paper"]
    cmds = [_pose_command(p) for p in _poses(scene, n, seed)]
    local = EmbeddedBackend(scene, w, h, 90.0, shadows=True)
    proc, host, port = _start_server(scene_file, w, h)
    try:
        client = Client((host, port))
        if not client.connect(timeout=10):
            raise RuntimeError("the unrealcv client could not connect")
        def remote(view: str, pose_cmd: str) -> None:
            assert client.request(pose_cmd) == "ok"
            data = client.request(PER_FRAME[view][0])
            if isinstance(data, str):  # the client returns str when the bytes happen to be utf-8
                data = data.encode("utf-8")
            if view == "depth npy":
                encoding.decode_npy(data)
            else:
                encoding.decode_image(data)

        def inproc(view: str, used: np.ndarray) -> None:
            local.set_pose(used)
            local.capture((PER_FRAME[view][1],))

        for view in PER_FRAME:  # warm-up: caches, compiled kernels, connection
            for pose_cmd, used in cmds[:3]:
                remote(view, pose_cmd)
                inproc(view, used)
        # frame by frame, protocol and in-process alternating, so load changes hit both alike
        times = {view: {"protocol": [], "in_process": []} for view in PER_FRAME}
        cpu = {view: {"protocol": 0.0, "in_process": 0.0, "server": 0.0} for view in PER_FRAME}
        for _ in range(repeats):
            for pose_cmd, used in cmds:
                for view in PER_FRAME:
                    s0, c0, t0 = _proc_cpu_s(proc.pid), time.process_time(), time.perf_counter()
                    remote(view, pose_cmd)
                    t1, c1 = time.perf_counter(), time.process_time()
                    s1 = _proc_cpu_s(proc.pid)
                    inproc(view, used)
                    t2, c2 = time.perf_counter(), time.process_time()
                    times[view]["protocol"].append(t1 - t0)
                    times[view]["in_process"].append(t2 - t1)
                    cpu[view]["protocol"] += c1 - c0
                    cpu[view]["in_process"] += c2 - c1
                    cpu[view]["server"] += s1 - s0
        # the protocol returns the in-process pixels
        pose_cmd, used = cmds[0]
        client.request(pose_cmd)
        got = encoding.decode_image(client.request(PER_FRAME["lit png"][0]))
        local.set_pose(used)
        identical = bool(np.array_equal(got, local.capture(("rgb",)).rgb))
        client.disconnect()
    finally:
        _stop_server(proc)
    # encoder / decoder cost alone on one rendered frame (single call, this process)
    local.set_pose(cmds[0][1])
    f = local.capture(("rgb", "depth"))
    stage = {}
    for name, fn in (("encode png", lambda: encoding.encode_png(f.rgb)), ("encode bmp", lambda: encoding.encode_bmp(f.rgb)),
                     ("encode npy", lambda: encoding.encode_npy(cv.ours_depth_to_ue(f.depth))),
                     ("decode png", lambda b=encoding.encode_png(f.rgb): encoding.decode_image(b)),
                     ("decode bmp", lambda b=encoding.encode_bmp(f.rgb): encoding.decode_image(b)),
                     ("decode npy", lambda b=encoding.encode_npy(f.depth): encoding.decode_npy(b))):
        fn()
        c0 = time.process_time()
        for _ in range(20):
            fn()
        stage[name] = round(1000 * (time.process_time() - c0) / 20, 2)
    out = {"size": "paper", "width": w, "height": h, "frames": n, "repeats": repeats, "views": {},
           "protocol_pixels_identical": identical, "stage_cpu_ms": stage}
    m = n * repeats
    for view, tv in times.items():
        p = {"fps": round(1.0 / statistics.median(tv["protocol"]), 2),
             "cpu_ms": round(1000 * cpu[view]["protocol"] / m, 2),
             "server_cpu_ms": round(1000 * cpu[view]["server"] / m, 2)}
        i = {"fps": round(1.0 / statistics.median(tv["in_process"]), 2),
             "cpu_ms": round(1000 * cpu[view]["in_process"] / m, 2)}
        out["views"][view] = {"protocol": p, "in_process": i, "ratio": round(p["fps"] / i["fps"], 3),
                              "mean_fps": {"protocol": round(m / sum(tv["protocol"]), 2),
                                           "in_process": round(m / sum(tv["in_process"]), 2)}}
    lp = out["views"]["lit png"]
    out["bar"] = {"fps": BAR_FPS, "ratio": BAR_RATIO,
                  "met": bool(lp["protocol"]["fps"] >= BAR_FPS and lp["ratio"] >= BAR_RATIO)}
    return out


def measure_pipelined(scene, scene_file: Path, name: str, w: int, h: int, n: int, repeats: int, seed: int) -> dict:
    poses = _poses(scene, n, seed)
    local = EmbeddedBackend(scene, w, h, 90.0, shadows=True)
    local.capture_batch(poses[:3])  # warm caches (ray directions, textures)
    proc, host, port = _start_server(scene_file, w, h)
    try:
        remote = UnrealCVBackend(host, port, timeout=120.0).connect()
        remote.capture_batch(poses[:3])
        run, here = _Run(proc.pid), _Run(None)
        inproc, proto, floor = [], [], []
        for _ in range(repeats):
            inproc.append(here(lambda: len(local.capture_batch(poses, ("rgb", "depth"))), n))
            proto.append(run(lambda: len(remote.capture_batch(poses, ("rgb", "depth"))), n))
            floor.append(here(lambda: len(local.capture_batch(poses, ("depth",))), n))
        a = remote.capture_batch(poses[:1], ("rgb",))[0]
        b = local.capture_batch([a.c2w], ("rgb",))[0]  # a.c2w: the pose the server rendered
        identical = bool(np.array_equal(a.rgb, b.rgb))
        remote.close()
    finally:
        _stop_server(proc)
    p, i, f = _med(proto), _med(inproc), _med(floor)
    return {"size": name, "width": w, "height": h, "frames": n, "repeats": repeats,
            "protocol": p, "in_process": i, "raycast_floor": f,
            "ratio_protocol_over_in_process": round(p["fps"] / i["fps"], 3),
            "runs_fps": {"in_process": [round(x["fps"], 2) for x in inproc],
                         "protocol": [round(x["fps"], 2) for x in proto],
                         "raycast_floor": [round(x["fps"], 2) for x in floor]},
            "target_ratio": 0.5, "meets_target": bool(p["fps"] >= 0.5 * i["fps"]),
            "protocol_pixels_identical": identical}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="apartment")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames-paper", type=int, default=40)
    ap.add_argument("--frames-train", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-pipelined", action="store_true", help="only the per-frame measurement")
    ap.add_argument("--out", default=str(ROOT / "reports" / "perf_protocol"))
    args = ap.parse_args(argv)
    command = "python perf/perf_protocol.py " + " ".join(argv if argv is not None else sys.argv[1:])
    up0, load0 = _uptime(), os.getloadavg()
    print(up0, flush=True)
    scene = generate_scene(args.family, args.seed)
    with tempfile.TemporaryDirectory() as d:
        scene_file = Path(save_scene(scene, Path(d) / f"{scene.scene_id}.json"))
        per_frame = measure_per_frame(scene, scene_file, args.frames_paper, args.repeats, args.seed)
        print(json.dumps(per_frame), flush=True)
        pipelined = []
        if not args.skip_pipelined:
            for name, (w, h) in SIZES.items():
                n = args.frames_paper if name == "paper" else args.frames_train
                r = measure_pipelined(scene, scene_file, name, w, h, n, args.repeats, args.seed)
                print(json.dumps(r), flush=True)
                pipelined.append(r)
    up1, load1 = _uptime(), os.getloadavg()
    print(up1, flush=True)
    report = {"command": command.strip(), "scene": scene.scene_id, "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in load1],
                          "uptime_before": up0, "uptime_after": up1},
              "shadows": True, "per_frame": per_frame, "pipelined": pipelined}
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    pf = per_frame
    lp = pf["views"]["lit png"]
    lines = [
        "# UnrealCV protocol throughput", "",
        f"Command: `{report['command']}`  ",
        f"Date (UTC): {report['date_utc']}; scene `{scene.scene_id}`; {os.cpu_count()} CPUs shared with other jobs; "
        f"load average (1, 5, 15 min) before {report['machine']['loadavg_before']}, after "
        f"{report['machine']['loadavg_after']}; shadows on.  ",
        f"`uptime` before: `{up0}`; after: `{up1}`.", "",
        "## Per frame at 832x480 (issue 24)", "",
        f"Real `unrealcv` client against `relic datagen serve` (its own process, loopback): for each of {pf['frames']} "
        "poses `vset /camera/0/pose` then one `vget`, each waiting for its reply, the reply decoded to an array. "
        "In-process: `EmbeddedBackend.set_pose` + `capture` of the same kind at the same poses. Each frame is "
        "timed; protocol and in-process frames alternate (same pose, then the next kind, then the next pose), "
        f"{pf['repeats']} passes; FPS = 1 / median frame time. CPU ms per frame: benchmark process (client incl. "
        "decoding, or in-process rendering) and server process (from /proc, 10 ms ticks summed over all frames).", "",
        f"Bar: lit png >= {BAR_FPS:g} FPS and >= {BAR_RATIO} x in-process: "
        f"**{'met' if pf['bar']['met'] else 'NOT met'}** ({lp['protocol']['fps']} FPS, ratio {lp['ratio']}).", "",
        "| request | protocol FPS | in-process FPS | ratio | client cpu ms | server cpu ms | in-process cpu ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for view, v in pf["views"].items():
        lines.append(f"| `vget /camera/0/{view.replace(' ', ' ')}` | {v['protocol']['fps']} | {v['in_process']['fps']} | "
                     f"{v['ratio']} | {v['protocol']['cpu_ms']} | {v['protocol']['server_cpu_ms']} | "
                     f"{v['in_process']['cpu_ms']} |")
    lines += ["", "Encoding / decoding alone, CPU ms per 832x480 frame: "
              + ", ".join(f"{k} {v}" for k, v in pf["stage_cpu_ms"].items())
              + f". Protocol pixels identical to in-process: {pf['protocol_pixels_identical']}.", "",
              "Mean FPS (frames / total time) alongside: " + "; ".join(f"{k}: {v['mean_fps']}" for k, v in pf["views"].items()), ""]
    if pipelined:
        lines += ["## Pipelined RGB + depth", "",
                  "`UnrealCVBackend.capture_batch` (pipelined batches of 16 poses, `lit png` + `depth npy` per pose) vs "
                  "`EmbeddedBackend.capture_batch`; ray-cast floor = in-process depth-only captures. FPS = frames / wall "
                  f"time, median of {args.repeats} interleaved runs.", "",
                  "| size | frames | in-process FPS | protocol FPS | ratio | target >= 0.5 | ray-cast floor FPS | "
                  "client cpu ms | server cpu ms | in-process cpu ms | pixels identical |",
                  "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
        for r in pipelined:
            lines.append(f"| {r['size']} {r['width']}x{r['height']} | {r['frames']} | {r['in_process']['fps']} | "
                         f"{r['protocol']['fps']} | {r['ratio_protocol_over_in_process']} | "
                         f"{'yes' if r['meets_target'] else 'NO'} | {r['raycast_floor']['fps']} | "
                         f"{r['protocol']['cpu_ms']} | {r['protocol']['server_cpu_ms']} | {r['in_process']['cpu_ms']} | "
                         f"{r['protocol_pixels_identical']} |")
        lines += ["", "Per-run FPS: " + "; ".join(f"{r['size']}: {r['runs_fps']}" for r in pipelined), ""]
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines))
    print(f"wrote {out.with_suffix('.md')} and .json")
    return 0 if pf["bar"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
