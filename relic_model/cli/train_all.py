"""`relic train all`: autoencoder -> teacher -> student init -> distill, then RUN/bundle/.

Resumes by default: finished stages (RUN/<stage>/final) are skipped, an interrupted stage continues
from its newest checkpoint. The bundle (model.safetensors + config.yaml + provenance.json) is what
``RelicWorldModel(checkpoint=RUN/bundle)`` loads.
"""
from __future__ import annotations

import sys

from relic_model.train.cli_common import add_train_arguments, make_context


def add_arguments(parser) -> None:
    add_train_arguments(parser, all_stages=True)
    parser.add_argument("--fresh", action="store_true", help="refuse to reuse existing stage results (no resume)")


def run(args) -> int:
    from relic_model.train.run import train_all
    ctx = make_context(args)
    out = train_all(ctx, args.steps, resume=not args.fresh, command="relic " + " ".join(sys.argv[1:]))
    if ctx.info.is_main:
        print(f"bundle: {out}  (model.safetensors, config.yaml, provenance.json)")
    return 0
