"""`relic bench score`: score a folder of externally generated videos (named by task id)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--videos", required=True, type=Path,
                   help="folder with <task_id>.mp4 (or <task_id>/ of PNG frames) per task")
    p.add_argument("--suite", required=True, type=Path, help="the suite folder the videos were generated for")
    p.add_argument("--out", required=True, type=Path, help="run folder (results, leaderboard.md, report.html)")
    p.add_argument("--name", default=None, help="model name in the tables (default: the folder name)")
    p.add_argument("--trajectories", type=Path, default=None,
                   help="folder of TUM trajectories <task_id>.txt from an external estimator")
    p.add_argument("--baselines", default="", help="also run these models for reference, e.g. oracle,static")
    p.add_argument("--estimator", default="opencv", help="pose estimator when no TUM file is given")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    p.add_argument("--allow-missing", action="store_true", help="score only the tasks that have a video")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from benchmark.adapters import parse_models
    from benchmark.adapters.video_folder import VideoFolderModel, find_video
    from benchmark.harness import run_benchmark
    from benchmark.tasks.io import load_suite

    suite = load_suite(args.suite)
    model = VideoFolderModel(args.videos, name=args.name or args.videos.resolve().name)
    missing = [t.task_id for t in suite.tasks if find_video(args.videos, t.task_id) is None]
    tasks = suite.tasks
    if missing:
        if not args.allow_missing:
            raise FileNotFoundError(f"{len(missing)} task(s) have no video in {args.videos}: {', '.join(missing[:5])}"
                                    f"{' ...' if len(missing) > 5 else ''} (name them <task_id>.mp4, or pass "
                                    "--allow-missing)")
        tasks = [t for t in tasks if t.task_id not in missing]
    run_benchmark(parse_models(args.baselines), tasks, args.out, suite_name=suite.name, suite_root=str(suite.root),
                  lpips=not args.no_lpips, estimator=args.estimator, trajectories_dir=args.trajectories,
                  models={model.name: model}, progress=not args.quiet)
    print(f"leaderboard: {args.out / 'leaderboard.md'}")
    print(f"report:      {(args.out / 'report.html').resolve()}")
    return 0
