"""`relic train finetune-decoder`: see relic_model.train.finetune_decoder and relic_model/README.md."""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    from relic_model.train.finetune_decoder import DecoderFinetuneSettings as S

    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="source checkpoint directory (default: the bundled relic_tiny)")
    parser.add_argument("--corpus", type=Path, required=True, help="corpus directory (its train split is used)")
    parser.add_argument("--out", type=Path, required=True, help="new checkpoint directory")
    parser.add_argument("--steps", type=int, default=S.steps)
    parser.add_argument("--batch", type=int, default=S.batch)
    parser.add_argument("--clip-latents", type=int, default=S.clip_latents)
    parser.add_argument("--lr", type=float, default=S.lr)
    parser.add_argument("--temporal-weight", type=float, default=S.temporal_weight)
    parser.add_argument("--seed", type=int, default=S.seed)
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import json

    from relic_model.train.finetune_decoder import DecoderFinetuneSettings, finetune_decoder

    s = DecoderFinetuneSettings(steps=args.steps, batch=args.batch, clip_latents=args.clip_latents, lr=args.lr,
                                temporal_weight=args.temporal_weight, seed=args.seed)
    entry = finetune_decoder(args.checkpoint, args.corpus, args.out, s, progress=not args.no_progress)
    print(json.dumps({"out": str(args.out), **{k: entry[k] for k in ("steps", "wall_time_s", "final_losses")}}, indent=1))
    return 0
