"""`relic datagen launch`: start N UnrealCV servers (UE builds or the embedded server) and keep them
alive until interrupted; prints their endpoints for `relic datagen build --endpoints ...`."""
from __future__ import annotations

import argparse
import shlex
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--binary", help="packaged UE executable with the UnrealCV plugin")
    src.add_argument("--command", help="any server command template with {port} {width} {height} {map}, e.g. "
                     "\"relic datagen serve --scene S.json --port {port}\"")
    p.add_argument("--map", default="", help="UE map to open (binary mode)")
    p.add_argument("-n", "--instances", type=int, default=1, help="how many servers (one per capture worker)")
    p.add_argument("--base-port", type=int, default=9000)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--gpu", type=int, default=None, help="UE -graphicsadapter index")
    p.add_argument("--no-offscreen", action="store_true", help="open a window (UE renders off-screen by default)")
    p.add_argument("--startup-timeout", type=float, default=180.0)
    p.add_argument("--log-dir", default="runs/ue_logs")
    p.add_argument("--watch", type=float, default=10.0, help="seconds between liveness checks (restarts dead servers)")


def run(args) -> int:
    from datagen.ue_launcher import InstancePool, ue_command

    if args.instances < 1:
        raise ValueError("--instances must be at least 1")
    template = (ue_command(args.binary, args.map, offscreen=not args.no_offscreen, gpu=args.gpu)
                if args.binary else shlex.split(args.command))
    pool = InstancePool(template, n=args.instances, base_port=args.base_port, width=args.width,
                        height=args.height, map_name=args.map, log_dir=args.log_dir,
                        startup_timeout=args.startup_timeout)
    with pool:
        print("ready: --endpoints " + ",".join(pool.endpoints), flush=True)
        try:
            while True:
                time.sleep(args.watch)
                for inst in pool.instances:
                    if inst.ensure_alive():
                        print(f"restarted {inst.endpoint} (restart #{inst.restarts})", flush=True)
        except KeyboardInterrupt:
            print("stopping servers")
    return 0
