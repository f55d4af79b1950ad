"""`relic bench tasks`: build a versioned task suite on held-out scenes."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="suite folder to create (resumable)")
    p.add_argument("--suite", default="smoke", choices=["smoke", "full", "mini"],
                   help="smoke: one short task per family at 112x64 (CI, main job); full: leaderboard suite; "
                        "mini: 3 tiny tasks (tests)")
    p.add_argument("--width", type=int, default=None, help="frame width in pixels (default: the suite's)")
    p.add_argument("--height", type=int, default=None, help="frame height in pixels (default: the suite's)")
    p.add_argument("--resolution", default=None, help="preset name (train, small, medium, paper) or WxH")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default 16)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from benchmark.tasks.suite import build_suite, suite_spec

    w, h = args.width, args.height
    if args.resolution:
        from datagen.render.presets import resolution

        w, h = resolution(args.resolution)
    if (w is None) != (h is None):
        raise ValueError("give both --width and --height (or --resolution)")
    spec = suite_spec(args.suite, w, h, args.fps)
    m = build_suite(args.out, spec, progress=not args.quiet)
    n = sum(t["num_frames"] for t in m["tasks"])
    print(f"suite {m['suite']} v{m['version']}: {len(m['tasks'])} tasks, {n} frames at {spec.width}x{spec.height} "
          f"-> {args.out}/manifest.json")
    return 0
