"""`relic train finetune-decoder`: see relic_model.train.finetune_decoder and relic_model/README.md."""
from __future__ import annotations

from pathlib import Path

from datagen.cli_common import int_at_least, nonnegative_float, positive_float, positive_int


def add_arguments(parser) -> None:
    from relic_model.train.finetune_decoder import DecoderFinetuneSettings as S

    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="source checkpoint directory (default: the bundled relic_tiny)")
    parser.add_argument("--corpus", type=Path, required=True, help="corpus directory (its train split is used)")
    parser.add_argument("--out", type=Path, required=True, help="new checkpoint directory")
    parser.add_argument("--steps", type=positive_int, default=S.steps, help="optimisation steps")
    parser.add_argument("--batch", type=positive_int, default=S.batch, help="clips per step")
    parser.add_argument("--clip-latents", type=int_at_least(3), default=S.clip_latents,
                        help="latent frames per clip (>= 3: the first-frame latent and at least two groups)")
    parser.add_argument("--lr", type=positive_float, default=S.lr, help="AdamW learning rate")
    parser.add_argument("--temporal-weight", type=nonnegative_float, default=S.temporal_weight,
                        help="weight of the L1 loss on frame-to-frame differences (0 = off)")
    parser.add_argument("--seed", type=int_at_least(0), default=S.seed, help="seed of clip sampling")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import json

    from relic_model.train.finetune_decoder import DecoderFinetuneSettings, finetune_decoder

    s = DecoderFinetuneSettings(steps=args.steps, batch=args.batch, clip_latents=args.clip_latents, lr=args.lr,
                                temporal_weight=args.temporal_weight, seed=args.seed)
    entry = finetune_decoder(args.checkpoint, args.corpus, args.out, s, progress=not args.no_progress)
    print(json.dumps({"out": str(args.out), **{k: entry[k] for k in ("steps", "wall_time_s", "final_losses")}}, indent=1))
    return 0
