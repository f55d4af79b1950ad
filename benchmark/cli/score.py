"""`relic bench score`: score a folder of externally generated videos (named by task id).

Every suite task is scored (the leaderboard's means must cover the same tasks for every row). A task
declared in ``VIDEOS/not_applicable.json`` is n/a (reported with its reason). A task without a video
stops the command at once (one line) unless ``--allow-missing``; an unreadable video or a wrong
frame count fails that task. Exit status 1 (one line per problem) when the model is incomplete,
unless ``--allow-missing`` (then the leaderboard labels it and shows its means over the tasks it has).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.adapters import parse_models, validate_spec
from benchmark.adapters.video_folder import VideoFolderModel, find_video
from benchmark.cli.run import finish, use_lpips_weights
from benchmark.tasks.io import load_suite


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--videos", required=True, type=Path,
                   help="folder with <task_id>.mp4 (or <task_id>/ of PNG frames) per task")
    p.add_argument("--suite", required=True, type=Path, help="the suite folder the videos were generated for")
    p.add_argument("--out", required=True, type=Path, help="run folder (results, leaderboard.md, report.html)")
    p.add_argument("--name", default=None, help="model name in the tables (default: the folder name)")
    p.add_argument("--trajectories", type=Path, default=None,
                   help="folder of TUM trajectories <task_id>.txt from an external estimator")
    p.add_argument("--baselines", default="", help="also run these models for reference, e.g. oracle,static")
    p.add_argument("--estimator", default="direct", help="pose estimator when no TUM file is given (direct, opencv, opencv-orb, opencv-sift, colmap)")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    p.add_argument("--lpips-weights", type=Path, default=None,
                   help="torchvision's AlexNet backbone file for LPIPS on an offline machine (SHA-256 verified)")
    p.add_argument("--allow-missing", action="store_true",
                   help="accept an incomplete model (tasks without a usable video, NaN headline metrics): it is "
                        "labelled INCOMPLETE in the leaderboard with means over the tasks it has, exit status 0")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from benchmark.harness import run_benchmark

    baselines = parse_models(args.baselines)
    for spec in baselines:
        validate_spec(spec)
    use_lpips_weights(args.lpips_weights, not args.no_lpips)
    suite = load_suite(args.suite)
    model = VideoFolderModel(args.videos, name=args.name or args.videos.resolve().name)
    missing = [t.task_id for t in suite.tasks
               if find_video(args.videos, t.task_id) is None and t.task_id not in model.not_applicable]
    if missing and not args.allow_missing:
        raise FileNotFoundError(f"{len(missing)} task(s) have no video in {args.videos}: {', '.join(missing[:5])}"
                                f"{' ...' if len(missing) > 5 else ''} (name them <task_id>.mp4, declare them in "
                                "not_applicable.json, or pass --allow-missing)")
    run_benchmark(baselines, suite.tasks, args.out, suite_name=suite.name, suite_root=str(suite.root),
                  lpips=not args.no_lpips, estimator=args.estimator, trajectories_dir=args.trajectories,
                  models={model.name: model}, progress=not args.quiet, allow_missing=args.allow_missing)
    print(f"leaderboard: {args.out / 'leaderboard.md'}")
    print(f"report:      {(args.out / 'report.html').resolve()}")
    return finish(args.out, args.allow_missing)
