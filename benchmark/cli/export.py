"""`relic bench export`: write a suite's task pack (model inputs only) for any lab to run.

See :mod:`benchmark.tasks.export` for the layout; `relic bench score --videos` scores what comes back.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.tasks.export import export_pack, parse_formats
from benchmark.tasks.io import load_suite
from benchmark.tasks.suite import ensure_suite
from datagen.cli_common import CliError, ensure_output_dir

PACK_ENTRIES = ("pack.json", "schema.json", "README.md", "SHA256SUMS", "tasks", "*.tmp", ".*")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default=None, choices=["smoke", "full"],
                   help="suite to build into the cache (as `relic bench run`) when --tasks is not given")
    p.add_argument("--tasks", type=Path, default=None, help="a suite folder built by `relic bench tasks`")
    p.add_argument("--task-ids", default=None, help="comma-separated subset of task ids")
    p.add_argument("--out", required=True, type=Path, help="pack folder to write")
    p.add_argument("--format", default="all",
                   help="control forms: relic, keyboard-mouse, poses (comma-separated) or all")
    p.add_argument("--force", action="store_true", help="write into --out even when it holds other files")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    formats = parse_formats(args.format)
    if (args.suite is None) == (args.tasks is None):
        raise CliError("give exactly one of --suite NAME or --tasks SUITE_DIR")
    if args.tasks is not None:
        root = args.tasks
    else:
        root = ensure_suite(args.suite, progress=not args.quiet)
    ids = [t.strip() for t in args.task_ids.split(",")] if args.task_ids else None
    suite = load_suite(root, ids)
    ensure_output_dir(args.out, ours=PACK_ENTRIES, what="task pack", marker="pack.json", force=args.force)
    pack = export_pack(suite, args.out, formats)
    n = sum(t["num_frames"] - 1 for t in pack["tasks"])
    print(f"task pack of suite {pack['suite']}: {len(pack['tasks'])} tasks, {n} control steps, formats "
          f"{','.join(pack['formats'])} -> {args.out}/pack.json (check with `sha256sum -c SHA256SUMS` in it)")
    return 0
