"""`relic bench run`: run models on a suite, score them, write results, leaderboard and report.

Exit status: 1 with one line when a model spec is unknown or names a missing path (checked before
anything runs); 1 after writing the run when a model is incomplete (a task missing, e.g. the model
could not be built or failed on it, or a NaN in a headline metric where the task defines it), one
line per problem, unless ``--allow-missing``; 0 otherwise.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from benchmark.adapters import parse_models, validate_spec
from benchmark.leaderboard import incomplete_summary
from benchmark.tasks.io import load_suite
from benchmark.tasks.suite import ensure_suite
from datagen.cli_common import nonnegative_float


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", default="oracle,static,reproject",
                   help="comma-separated model specs: oracle, static, reproject, noisy-oracle:KIND=S "
                        "(KIND drift|blur|forget), video-folder:DIR, relic[:CKPT], relic-nomem[:CKPT]; "
                        "'baselines' = oracle,static,reproject; 'validity' = the noisy-oracle variants of "
                        "the metric-validity section")
    p.add_argument("--suite", default="smoke", choices=["smoke", "full"],
                   help="suite to build into the cache when --tasks is not given")
    p.add_argument("--tasks", type=Path, default=None, help="a suite folder built by `relic bench tasks`")
    p.add_argument("--task-ids", default=None, help="comma-separated subset of task ids")
    p.add_argument("--out", required=True, type=Path, help="run folder (results, leaderboard.md, report.html)")
    p.add_argument("--estimator", default="direct", help="pose estimator (direct, opencv, opencv-orb, opencv-sift, colmap)")
    p.add_argument("--trajectories", type=Path, default=None,
                   help="folder of external TUM trajectories <model>/<task_id>.txt or <task_id>.txt")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS (faster)")
    p.add_argument("--lpips-weights", type=Path, default=None,
                   help="torchvision's AlexNet backbone file (alexnet-owt-7be5be79.pth) for LPIPS on an offline "
                        "machine; verified by SHA-256 (default: torchvision's cache; never downloaded)")
    p.add_argument("--allow-missing", action="store_true",
                   help="accept incomplete models (a missing task or a NaN headline metric): the leaderboard "
                        "labels them and shows their means over the tasks they have, and the exit status is 0")
    p.add_argument("--publish", type=Path, default=None,
                   help="also copy leaderboard.md, report.html and results.csv into this folder (e.g. reports/)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out: saved rollouts and scores are reused")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: rollouts in this process, scoring in a process pool; ray: rollouts and scoring "
                        "on Ray workers (same scores; speed is measured on the workers)")
    p.add_argument("--ray-address", default=None,
                   help="with --engine ray: 'auto' or HOST:PORT of a running cluster (default: start a local "
                        "Ray with this machine's cores)")
    p.add_argument("--ray-gpus-per-model", type=nonnegative_float, default=0.0,
                   help="with --engine ray: GPUs each model worker reserves (e.g. 1 for relic on a GPU cluster)")


def load_tasks(args):
    root = args.tasks if args.tasks is not None else ensure_suite(args.suite, progress=not args.quiet)
    ids = [t.strip() for t in args.task_ids.split(",")] if getattr(args, "task_ids", None) else None
    return load_suite(root, ids)


def publish(out: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("leaderboard.md", "report.html", "results.csv"):
        tmp = dest / f".{name}.tmp"
        shutil.copyfile(out / name, tmp)
        tmp.replace(dest / name)


def use_lpips_weights(path: Path | None, lpips: bool) -> None:
    """Point LPIPS at ``path`` (verified now, one-line error when it is not the backbone file); the
    environment variable carries it into the scoring processes."""
    import os

    if path is None or not lpips:
        return
    from benchmark.metrics.image_quality import LPIPS_WEIGHTS_ENV, verify_backbone

    bad = verify_backbone(str(path), "alex")
    if bad:
        raise ValueError(f"--lpips-weights: {bad}")
    os.environ[LPIPS_WEIGHTS_ENV] = str(Path(path).resolve())


def finish(out: Path, allow_missing: bool) -> int:
    """Exit status of a finished run: 1 (one line per problem) when a model is incomplete, unless allowed."""
    import sys

    problems = incomplete_summary(out)
    for line in problems:
        print(f"relic: incomplete: {line}", file=sys.stderr)
    if problems and not allow_missing:
        print(f"relic: error: {len(problems)} problem(s) above; the leaderboard marks those models INCOMPLETE "
              "(pass --allow-missing to accept incomplete results)", file=sys.stderr)
        return 1
    return 0


def run(args) -> int:
    from benchmark.harness import run_benchmark

    if args.engine != "ray" and (args.ray_address or args.ray_gpus_per_model):
        raise ValueError("--ray-address / --ray-gpus-per-model need --engine ray")
    specs = parse_models(args.models)
    if not specs:
        raise ValueError("--models is empty")
    for spec in specs:
        validate_spec(spec)
    use_lpips_weights(args.lpips_weights, not args.no_lpips)
    suite = load_tasks(args)
    df = run_benchmark(specs, suite.tasks, args.out, suite_name=suite.name, suite_root=str(suite.root),
                       lpips=not args.no_lpips, estimator=args.estimator, trajectories_dir=args.trajectories,
                       progress=not args.quiet, resume=args.resume, allow_missing=args.allow_missing,
                       engine=args.engine, ray_address=args.ray_address, ray_gpus_per_model=args.ray_gpus_per_model)
    if args.publish:
        publish(args.out, args.publish)
    ran = sorted(set(df["model"]))
    print(f"scored {len(ran)} model rows on {len(suite.tasks)} tasks: {', '.join(ran)}")
    print(f"leaderboard: {args.out / 'leaderboard.md'}")
    print(f"report:      {(args.out / 'report.html').resolve()}")
    return finish(args.out, args.allow_missing)
