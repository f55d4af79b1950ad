"""`relic bench run`: run models on a suite, score them, write results, leaderboard and report."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path


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
    p.add_argument("--estimator", default="opencv", help="pose estimator (opencv, opencv-sift)")
    p.add_argument("--trajectories", type=Path, default=None,
                   help="folder of external TUM trajectories <model>/<task_id>.txt or <task_id>.txt")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS (faster)")
    p.add_argument("--publish", type=Path, default=None,
                   help="also copy leaderboard.md, report.html and results.csv into this folder (e.g. reports/)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out: saved rollouts and scores are reused")


def load_tasks(args):
    from benchmark.tasks.io import load_suite
    from benchmark.tasks.suite import ensure_suite

    root = args.tasks if args.tasks is not None else ensure_suite(args.suite, progress=not args.quiet)
    ids = [t.strip() for t in args.task_ids.split(",")] if getattr(args, "task_ids", None) else None
    return load_suite(root, ids)


def publish(out: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("leaderboard.md", "report.html", "results.csv"):
        tmp = dest / f".{name}.tmp"
        shutil.copyfile(out / name, tmp)
        tmp.replace(dest / name)


def run(args) -> int:
    from benchmark.adapters import parse_models
    from benchmark.harness import run_benchmark

    suite = load_tasks(args)
    specs = parse_models(args.models)
    if not specs:
        raise ValueError("--models is empty")
    df = run_benchmark(specs, suite.tasks, args.out, suite_name=suite.name, suite_root=str(suite.root),
                       lpips=not args.no_lpips, estimator=args.estimator, trajectories_dir=args.trajectories,
                       progress=not args.quiet, resume=args.resume)
    if args.publish:
        publish(args.out, args.publish)
    ran = sorted(set(df["model"]))
    print(f"scored {len(ran)} model rows on {len(suite.tasks)} tasks: {', '.join(ran)}")
    print(f"leaderboard: {args.out / 'leaderboard.md'}")
    print(f"report:      {(args.out / 'report.html').resolve()}")
    return 0
