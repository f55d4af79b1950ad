"""`relic bench merge`: combine finished runs on the same suite into one leaderboard (benchmark.merge_runs).

Refuses (one line) runs that are not comparable, e.g. of different scoring protocol versions. Exit
status 1 (one line per problem) when a merged model is incomplete, unless ``--allow-missing``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.run import finish, publish


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", type=Path, help="finished run folders; a model in several runs is taken "
                                                       "from the last one given")
    p.add_argument("--out", required=True, type=Path, help="new folder for the merged results and reports")
    p.add_argument("--publish", type=Path, default=None,
                   help="also copy leaderboard.md, report.html and results.csv into this folder")
    p.add_argument("--allow-missing", action="store_true",
                   help="accept incomplete models in the merged leaderboard (labelled), exit status 0")


def run(args) -> int:
    from benchmark.merge_runs import merge_runs

    df = merge_runs(args.runs, args.out)
    if args.publish:
        publish(args.out, args.publish)
    print(f"merged {len(args.runs)} runs: {', '.join(sorted(set(df['model'])))}")
    print(f"leaderboard: {args.out / 'leaderboard.md'}")
    return finish(args.out, args.allow_missing)
