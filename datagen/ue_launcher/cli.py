"""`relic datagen launch`: start N UnrealCV servers (UE builds or the embedded server) and keep them
alive until interrupted; prints their endpoints for `relic datagen build --endpoints ...`.

    relic datagen launch --binary /opt/RelicCapture/Linux/RelicCapture.sh --map /Game/Maps/Level -n 2
    relic datagen launch --command "relic datagen serve --scene S.json --port {port}" -n 2 --base-port 9100

A server whose process dies is restarted every `--watch` seconds (liveness = process running and
port accepting TCP; a protocol probe is not used here because UnrealCV serves one client at a time
and a capture worker may be connected).
"""
from __future__ import annotations

import argparse
import shlex
import signal
import time

from datagen.cli_common import nonnegative_int, port, positive_float, positive_int
from datagen.ue_launcher import InstancePool, ue_command


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--binary", help="packaged UE executable with the UnrealCV plugin")
    src.add_argument("--command", help="any server command template with {port} (and optionally {width} {height} "
                     "{map}), e.g. \"relic datagen serve --scene S.json --port {port}\"")
    p.add_argument("--map", default="", help="UE map to open (binary mode), e.g. /Game/Maps/Level")
    p.add_argument("-n", "--instances", type=positive_int, default=1, help="how many servers (one per capture worker)")
    p.add_argument("--base-port", type=port, default=9000, help="first port tried (busy ports are skipped)")
    p.add_argument("--width", type=positive_int, default=640, help="{width} in pixels (UE: -ResX)")
    p.add_argument("--height", type=positive_int, default=480, help="{height} in pixels (UE: -ResY)")
    p.add_argument("--gpu", type=nonnegative_int, default=None, help="UE -graphicsadapter index")
    p.add_argument("--no-offscreen", action="store_true", help="open a window (UE renders off-screen by default)")
    p.add_argument("--startup-timeout", type=positive_float, default=180.0, help="seconds a server may take to answer")
    p.add_argument("--log-dir", default="runs/ue_logs", help="folder for server-<port>.log files")
    p.add_argument("--watch", type=positive_float, default=10.0,
                   help="seconds between liveness checks (restarts dead servers)")


def run(args) -> int:
    if args.instances < 1:
        raise ValueError("--instances must be at least 1")
    if args.watch <= 0:
        raise ValueError("--watch must be a positive number of seconds")
    template = (ue_command(args.binary, args.map, offscreen=not args.no_offscreen, gpu=args.gpu)
                if args.binary else shlex.split(args.command))
    pool = InstancePool(template, n=args.instances, base_port=args.base_port, width=args.width,
                        height=args.height, map_name=args.map, log_dir=args.log_dir,
                        startup_timeout=args.startup_timeout)

    def _term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    try:
        with pool:
            print("ready: --endpoints " + ",".join(pool.endpoints), flush=True)
            while True:
                time.sleep(args.watch)
                for ep in pool.watch_once():
                    print(f"restarted {ep} (restart #{pool.instance(ep).restarts})", flush=True)
    except KeyboardInterrupt:
        print("stopped servers", flush=True)
    return 0
