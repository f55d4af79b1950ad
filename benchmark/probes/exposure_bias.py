"""Does the still shot drift from the student's per-step error or from its own outputs as context?

    python -m benchmark.probes.exposure_bias --suite SUITE [--checkpoint CKPT] [--frames 48] [--out FILE.md]

From each suite task's first frame with static actions (the still-shot probe's setting), the
streaming student generates block by block in two ways that differ only in what enters its KV cache:

- ``free``: its own generated latents (what streaming does);
- ``forced``: the autoencoder's latents of the true still clip (frame 0 repeated), i.e. teacher
  forcing: every block is predicted from a correct context, then replaced by the true latent.

Both use the same seed, so block 1 (context = frame 0 only) is identical. Per block: latent RMSE of
the prediction to the true still clip's latent (unit-variance latent units), and PSNR of the decoded
predictions against the autoencoder's reconstruction of the still clip. If ``forced`` stays at block
1's error while ``free`` grows, the drift is exposure bias (errors compounding through the context),
not a per-step bias; the lever is then training on the model's own rollouts as context.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from benchmark.probes.still_shot import ae_reference, psnr_u8, static_actions, suite_first_frames
from datagen.atomic import atomic_write_text
from relic_model.inference.checkpoint import load_checkpoint
from relic_model.inference.streaming import StreamingGenerator, to_uint8_frames

MODES = ("free", "forced")


@torch.inference_mode()
def rollout_predictions(gen: StreamingGenerator, frame: np.ndarray, prompt: str, z_true: torch.Tensor,
                        blocks: int, forced: bool, seed: int = 0) -> torch.Tensor:
    """(1, blocks * fpb, C, h, w) predicted latents; the cache gets ``z_true``'s latents when ``forced``."""
    gen.reset(frame, prompt, seed=seed)
    fpb, preds = gen.fpb, []
    for i in range(blocks):
        true = z_true[:, 1 + i * fpb:1 + (i + 1) * fpb] if forced else None
        preds.append(gen.generate_block(static_actions(gen.frames_per_block), commit=true))
    return torch.cat(preds, 1)


def probe(images: list[tuple[str, np.ndarray, str]], checkpoint=None, frames: int = 48, seed: int = 0) -> list[dict]:
    """One row per (image, mode): per-block latent RMSE and per-latent-frame PSNR vs the AE still."""
    cfg, dit, ae, text = load_checkpoint(checkpoint, "cpu")
    gen = StreamingGenerator(dit, ae, text, cfg, memory=True)
    tf = cfg.autoencoder.temporal_factor
    blocks = max(1, frames // gen.frames_per_block)
    n_lat = blocks * gen.fpb
    rows = []
    for name, frame, prompt in images:
        _, _, z = ae_reference(ae, cfg, frame, n_lat * tf)
        with torch.inference_mode():
            ref = to_uint8_frames(ae.decode(z[:, :1 + n_lat])[0], frame.shape[:2])
        for mode in MODES:
            P = rollout_predictions(gen, frame, prompt, z, blocks, mode == "forced", seed)
            rmse = (P - z[:, 1:1 + n_lat]).pow(2).mean(dim=(0, 2, 3, 4)).sqrt()
            with torch.inference_mode():
                dec = to_uint8_frames(ae.decode(torch.cat([z[:, :1], P], 1))[0], frame.shape[:2])
            # the last of each latent's video frames
            idx = [tf * (j + 1) for j in range(n_lat)]
            rows.append({"image": name, "mode": mode, "latent_rmse": [float(v) for v in rmse],
                         "psnr_vs_ae_still": [psnr_u8(dec[i], ref[i]) for i in idx]})
    return rows


def summary(rows: list[dict]) -> str:
    n = len(rows[0]["latent_rmse"])
    picks = sorted({0, n // 4, n // 2, n - 1})
    head = " | ".join(f"block {i + 1}" for i in picks)
    out = [f"| mode | latent RMSE: {head} | PSNR vs AE still: {head} |",
           "|---|" + "---:|" * (2 * len(picks))]
    for mode in MODES:
        R = np.array([r["latent_rmse"] for r in rows if r["mode"] == mode])
        P = np.array([r["psnr_vs_ae_still"] for r in rows if r["mode"] == mode])
        out.append(f"| {mode} | " + " | ".join(f"{R[:, i].mean():.3f}" for i in picks) + " | "
                   + " | ".join(f"{P[:, i].mean():.2f}" for i in picks) + " |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", required=True, help="benchmark suite directory (first frames of its tasks)")
    ap.add_argument("--checkpoint", default=None, help="checkpoint directory (default: bundled)")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="Markdown table")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    images = suite_first_frames(args.suite)
    if not images:
        print(f"exposure_bias: no tasks in {args.suite}", file=sys.stderr)
        return 2
    rows = probe(images, args.checkpoint, args.frames, args.seed)
    md = (f"# Exposure bias on the still shot\n\n`python -m benchmark.probes.exposure_bias --suite {args.suite} "
          f"--checkpoint {args.checkpoint or 'bundled'} --frames {args.frames}`; means over {len(images)} first "
          f"frames (1-min load {os.getloadavg()[0]:.2f}).\n\n" + summary(rows))
    print(md)
    if args.out:
        atomic_write_text(Path(args.out), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
