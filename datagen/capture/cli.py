"""`relic datagen build`: capture episodes into a curated corpus (resumable)."""
from __future__ import annotations

import sys

from datagen.capture.config import load_config
from datagen.capture.pipeline import build_corpus, parse_endpoints
from datagen.capture.ray_engine import build_corpus_ray
from datagen.cli_common import ensure_output_dir, host, nonnegative_float, port, positive_float, positive_int
from datagen.ue_launcher.build import add_launch_arguments, launch_requested, pool_from_args
from datagen.ue_launcher.instance import ue_command

# what `relic datagen build` writes into --out (anything else there is someone else's)
CORPUS_ENTRIES = ("corpus.json", "manifest.parquet", "manifest.csv", "episodes", "report", ".tmp",
                  ".build.lock", ".server_logs", ".manifest*", ".corpus*")


def add_arguments(p) -> None:
    p.add_argument("--config", default=None, help="corpus YAML (default: datagen/configs/default_corpus.yaml)")
    p.add_argument("--out", required=True,
                   help="corpus folder (created; re-running resumes; a non-empty folder that is not a corpus "
                        "is refused unless --force)")
    p.add_argument("--force", action="store_true",
                   help="write the corpus into --out even when it already holds other files")
    p.add_argument("--workers", type=positive_int, default=2, help="worker processes for the embedded backend")
    p.add_argument("--backend", choices=("embedded", "unrealcv"), default="embedded",
                   help="embedded ray-cast renderer in each worker, or UnrealCV server(s)")
    p.add_argument("--host", type=host, default="127.0.0.1", help="UnrealCV host (with --backend unrealcv)")
    p.add_argument("--port", type=port, default=9000, help="UnrealCV port, 1-65535 (with --backend unrealcv)")
    p.add_argument("--endpoints", default=None,
                   help="comma-separated host:port UnrealCV servers; episodes are spread over them and a "
                        "failed server's episodes are re-queued on the others (implies --backend unrealcv)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="capture at most this many new episodes (>= 1; default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: worker processes on this machine; ray: one Ray actor per capture backend "
                        "(datagen/README.md, 'Building on a Ray cluster')")
    p.add_argument("--ray-address", default=None,
                   help="with --engine ray: 'auto' or HOST:PORT of a running cluster (default: start a local "
                        "Ray with this machine's cores)")
    p.add_argument("--ray-cpus-per-actor", type=positive_float, default=1.0,
                   help="with --engine ray: CPUs each capture actor reserves")
    p.add_argument("--ray-gpus-per-actor", type=nonnegative_float, default=0.0,
                   help="with --engine ray: GPUs each capture actor reserves (e.g. 1 per launched UE instance)")

    add_launch_arguments(p)  # --launch / --ue-binary: start (and restart) UnrealCV servers for the build


def run(args) -> int:
    import signal

    def _term(signum, frame):  # SIGTERM behaves like Ctrl-C: stop workers, keep finished episodes
        raise KeyboardInterrupt

    if args.ray_address and args.engine != "ray":
        raise ValueError("--ray-address needs --engine ray")
    cfg = load_config(args.config)
    endpoints = parse_endpoints(args.endpoints)
    ensure_output_dir(args.out, ours=CORPUS_ENTRIES, what="corpus", marker="corpus.json", force=args.force)
    signal.signal(signal.SIGTERM, _term)
    backend = args.backend
    if endpoints:
        backend = "unrealcv"
    elif backend == "unrealcv":
        endpoints = [(args.host, args.port)]

    if args.engine == "ray":
        return _run_ray(args, cfg, backend, endpoints, launch_requested(args))
    pool = None
    if launch_requested(args):
        if args.endpoints:
            raise ValueError("--launch/--ue-binary start their own servers: drop --endpoints (or drop --launch "
                             "to attach to running servers)")
        from pathlib import Path

        pool = pool_from_args(args, cfg.width, cfg.height, log_dir=str(Path(args.out) / ".server_logs"))
        pool.start()
        print("launched UnrealCV servers: " + ",".join(pool.endpoints), flush=True)
        backend, endpoints = "unrealcv", pool.addresses
    try:
        res = build_corpus(cfg, args.out, workers=args.workers, backend=backend, endpoints=endpoints,
                           progress=not args.no_progress, limit=args.limit,
                           restart_endpoint=pool.restart if pool is not None else None)
    finally:
        if pool is not None:
            pool.stop()
    return _report(res)


def _run_ray(args, cfg, backend: str, endpoints, launch: bool) -> int:
    """--engine ray: the same build with one Ray actor per capture backend."""
    from pathlib import Path

    opts = None
    if launch:
        if args.endpoints:
            raise ValueError("--launch/--ue-binary start their own servers: drop --endpoints (or drop --launch "
                             "to attach to running servers)")
        if args.launch and args.ue_binary:
            raise ValueError("give either --launch or --ue-binary, not both")
        import shlex

        command = ue_command(args.ue_binary, args.ue_map, gpu=args.ue_gpu) if args.ue_binary else shlex.split(args.launch)
        opts = {"command": command, "map_name": args.ue_map, "startup_timeout": args.startup_timeout,
                "log_dir": args.server_log_dir or str(Path(args.out).resolve() / ".server_logs")}
        backend = "launch"
    res = build_corpus_ray(cfg, args.out, workers=args.workers, backend=backend, endpoints=endpoints, launch=opts,
                           progress=not args.no_progress, limit=args.limit, ray_address=args.ray_address,
                           cpus_per_actor=args.ray_cpus_per_actor, gpus_per_actor=args.ray_gpus_per_actor)
    print(f"ray: {res.ray_address} (start-up {res.ray_startup_s:.1f} s, not counted below); "
          f"{len(res.nodes)} capture actor(s); {res.actor_deaths} actor death(s), episodes redone")
    return _report(res)


def _report(res) -> int:
    print(f"corpus {res.out}: {res.planned} planned, {res.skipped} already done, {res.built} built "
          f"({res.frames} frames in {res.seconds:.1f} s, {res.frames_per_s:.0f} frames/s)"
          + (f", {len(res.failed)} FAILED" if res.failed else ""))
    for eid, why in res.failed:
        print(f"  failed {eid}: {why}", file=sys.stderr)
    if res.endpoints_retired:
        print(f"  retired endpoints: {', '.join(f'{h}:{p}' for h, p in res.endpoints_retired if h)}", file=sys.stderr)
    return 1 if res.failed else 0
