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
    parser.add_argument("--lr-min", type=positive_float, default=None,
                        help="cosine decay from --lr to this at the last step (default: constant lr)")
    parser.add_argument("--fast-weight", type=nonnegative_float, default=S.fast_weight,
                        help="weight of the fast streaming decoder's loss (0: it is not trained)")
    parser.add_argument("--decoder-res-blocks", type=positive_int, default=None,
                        help="grow the full decoder to this many residual blocks per stage before training "
                             "(the added blocks start as identities; the latents stay unchanged)")
    parser.add_argument("--state-every", type=int_at_least(0), default=S.state_every,
                        help="steps between resumable state saves in OUT.state/ (0: none)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT.state/ (same settings)")
    parser.add_argument("--temporal-weight", type=nonnegative_float, default=S.temporal_weight,
                        help="weight of the L1 loss on frame-to-frame differences (0 = off)")
    parser.add_argument("--seed", type=int_at_least(0), default=S.seed, help="seed of clip sampling")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import json

    from relic_model.train.finetune_decoder import DecoderFinetuneSettings, finetune_decoder

    s = DecoderFinetuneSettings(steps=args.steps, batch=args.batch, clip_latents=args.clip_latents, lr=args.lr,
                                lr_min=args.lr_min, temporal_weight=args.temporal_weight, fast_weight=args.fast_weight,
                                seed=args.seed, decoder_res_blocks=args.decoder_res_blocks,
                                state_every=args.state_every)
    entry = finetune_decoder(args.checkpoint, args.corpus, args.out, s, progress=not args.no_progress,
                             resume=args.resume)
    print(json.dumps({"out": str(args.out), **{k: entry[k] for k in ("steps", "wall_time_s", "final_losses")}}, indent=1))
    return 0
