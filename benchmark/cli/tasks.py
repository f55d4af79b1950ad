"""`relic bench tasks`: build a versioned task suite on held-out scenes."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.tasks.suite import build_suite, suite_spec
from datagen.cli_common import (CliError, ensure_output_dir, int_at_least, parse_resolution, positive_float,
                                resolution_arg)
from datagen.render.presets import RESOLUTIONS

# frame sides must divide by the autoencoder's spatial factor (8, see datagen/render/presets.py)
SIDE_MULTIPLE = 8
# what `relic bench tasks` writes into --out
SUITE_ENTRIES = ("manifest.json", "build_state.json", "tasks", ".manifest*", ".build_state*", "*.tmp")


def _side(text: str) -> int:
    v = int_at_least(SIDE_MULTIPLE)(text)
    if v % SIDE_MULTIPLE:
        raise argparse.ArgumentTypeError(f"{v} is not a multiple of {SIDE_MULTIPLE} (the autoencoder's "
                                         f"downsampling), e.g. {v // SIDE_MULTIPLE * SIDE_MULTIPLE or SIDE_MULTIPLE}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path,
                   help="suite folder to create (resumable; a non-empty folder that is not a suite is refused "
                        "unless --force)")
    p.add_argument("--force", action="store_true", help="build into --out even when it holds other files")
    p.add_argument("--suite", default="smoke", choices=["smoke", "full", "mini"],
                   help="smoke: one short task per family at 112x64 (CI, main job); full: leaderboard suite; "
                        "mini: 3 tiny tasks (tests)")
    p.add_argument("--width", type=_side, default=None,
                   help=f"frame width in pixels, a multiple of {SIDE_MULTIPLE} (default: the suite's)")
    p.add_argument("--height", type=_side, default=None,
                   help=f"frame height in pixels, a multiple of {SIDE_MULTIPLE} (default: the suite's)")
    p.add_argument("--resolution", default=None,
                   type=resolution_arg(SIDE_MULTIPLE, RESOLUTIONS, min_side=SIDE_MULTIPLE),
                   help=f"preset name ({', '.join(RESOLUTIONS)}) or WxH with sides multiples of {SIDE_MULTIPLE}")
    p.add_argument("--fps", type=positive_float, default=None, help="frames per second (default: the suite's, 16)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    w, h = args.width, args.height
    if args.resolution:
        if w is not None or h is not None:
            raise CliError("give --resolution or --width/--height, not both")
        w, h = parse_resolution(args.resolution, SIDE_MULTIPLE, RESOLUTIONS, min_side=SIDE_MULTIPLE)
    if (w is None) != (h is None):
        raise CliError("give both --width and --height (or --resolution)")
    ensure_output_dir(args.out, ours=SUITE_ENTRIES, what="task suite", marker="manifest.json", force=args.force)
    spec = suite_spec(args.suite, w, h, args.fps)
    m = build_suite(args.out, spec, progress=not args.quiet)
    n = sum(t["num_frames"] for t in m["tasks"])
    print(f"suite {m['suite']} v{m['version']}: {len(m['tasks'])} tasks, {n} frames at {spec.width}x{spec.height} "
          f"-> {args.out}/manifest.json")
    return 0
