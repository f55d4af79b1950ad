"""Glue between the launcher and `relic datagen build`: launch N UnrealCV servers for a build,
restart one when it dies mid-episode, and stop them all when the build ends.

`relic datagen build --backend unrealcv --launch "<template with {port}>" --workers N` (or
``--ue-binary PATH --ue-map MAP``) starts N instances through :class:`InstancePool` on consecutive
free ports from ``--base-port``, captures with one worker per instance, and passes
:meth:`InstancePool.restart` to :func:`datagen.capture.pipeline.build_corpus` as its
``restart_endpoint`` hook: when a server dies (or stops answering) during an episode, the server is
restarted and the interrupted episode is captured again from its first frame on the new server.
Episodes are written atomically only when complete, so nothing is lost or duplicated.

One launched pool serves ONE scene (the scene file / UE map of the command), so a config's episodes
must all be in that scene; other scenes' episodes fail with "no live endpoint serves scene ...".
"""
from __future__ import annotations

import argparse
import shlex
from typing import Optional

from datagen.capture.pipeline import build_corpus
from datagen.ue_launcher.instance import ue_command
from datagen.ue_launcher.pool import InstancePool


def add_launch_arguments(p: argparse.ArgumentParser) -> None:
    """The launcher options of `relic datagen build` (all optional; none given = no launching)."""
    g = p.add_argument_group("launching UnrealCV servers (implies --backend unrealcv; one per --workers)")
    g.add_argument("--launch", default=None, metavar="TEMPLATE",
                   help="server command with {port} (and optionally {width} {height} {map}) started once per "
                        "worker, e.g. \"relic datagen serve --scene S.json --port {port}\"; a server that dies "
                        "mid-episode is restarted and the episode redone")
    g.add_argument("--ue-binary", default=None, metavar="PATH",
                   help="packaged UE executable with the UnrealCV plugin (started with -cvport={port} "
                        "-RenderOffScreen ...); alternative to --launch")
    g.add_argument("--ue-map", default="", metavar="MAP", help="UE map to open with --ue-binary, e.g. /Game/Maps/Level")
    g.add_argument("--ue-gpu", type=int, default=None, help="-graphicsadapter index for --ue-binary")
    g.add_argument("--base-port", type=int, default=9000, help="first port tried for launched servers (default 9000)")
    g.add_argument("--startup-timeout", type=float, default=180.0,
                   help="seconds a launched server may take to answer (default 180: UE loads slowly)")
    g.add_argument("--server-log-dir", default=None,
                   help="folder for server-<port>.log of launched servers (default: <out>/.server_logs)")


def launch_requested(args) -> bool:
    return bool(getattr(args, "launch", None) or getattr(args, "ue_binary", None))


def pool_from_args(args, width: int, height: int, log_dir: Optional[str] = None) -> InstancePool:
    """An (unstarted) InstancePool for `relic datagen build`'s launcher options."""
    if getattr(args, "launch", None) and getattr(args, "ue_binary", None):
        raise ValueError("give either --launch or --ue-binary, not both")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.ue_binary:
        template = ue_command(args.ue_binary, args.ue_map, gpu=args.ue_gpu)
    else:
        template = shlex.split(args.launch)
    return InstancePool(template, n=args.workers, base_port=args.base_port, width=width, height=height,
                        map_name=args.ue_map, log_dir=args.server_log_dir or log_dir,
                        startup_timeout=args.startup_timeout)


def build_with_pool(cfg, out, pool: InstancePool, **kwargs):
    """`build_corpus` over a started pool's servers, restarting any that dies mid-episode."""
    kwargs.setdefault("restart_endpoint", pool.restart)
    return build_corpus(cfg, out, backend="unrealcv", endpoints=pool.addresses, **kwargs)
