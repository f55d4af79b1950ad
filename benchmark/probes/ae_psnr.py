"""Autoencoder reconstruction PSNR on held-out benchmark clips (issue 20's VAE bar: >= 30 dB at the
bundled resolution).

Every task of a benchmark suite is cut into consecutive clips of ``1 + 4 (latents - 1)`` frames
(the first ``max_frames`` frames of the task), each clip is encoded and decoded as a whole (the
causal autoencoder's training layout: latent 0 = the clip's first frame alone) and scored per
frame against the ground truth (uint8, peak 255, as the benchmark's PSNR). Reported: the mean of
per-frame PSNR, the PSNR of the mean MSE ("pooled"), the first frames' PSNR (latent 0 alone) and the
other frames' PSNR.

The weights are a checkpoint directory (``config.yaml`` + ``model.safetensors`` with the
``autoencoder.`` prefix: the bundled checkpoint, a run's ``bundle/``, a stage checkpoint
``RUN/autoencoder/checkpoints/step_*`` or a :mod:`relic_model.train.snapshot` folder).

    python -m benchmark.probes.ae_psnr --suite SUITE_DIR [--checkpoint DIR]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from benchmark.tasks.io import load_suite
from relic_model.config import load_config
from relic_model.inference.checkpoint import BUNDLED
from relic_model.inference.streaming import to_uint8_frames
from relic_model.nn.autoencoder import VideoAutoencoder


def load_autoencoder(directory=None):
    """(cfg, VideoAutoencoder in eval mode) from a checkpoint directory (None = bundled)."""
    from safetensors.torch import load_file

    d = Path(directory) if directory is not None else BUNDLED
    cfg = load_config(d / "config.yaml")
    ae = VideoAutoencoder(cfg)
    sd = {k[len("autoencoder."):]: v for k, v in load_file(str(d / "model.safetensors")).items()
          if k.startswith("autoencoder.")}
    if not sd:
        raise ValueError(f"{d}/model.safetensors has no 'autoencoder.' tensors")
    ae.load_state_dict(sd)
    return cfg, ae.eval()


@torch.no_grad()
def clip_psnr(ae, frames: np.ndarray, latents: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame MSE (uint8 scale) of consecutive whole clips of ``frames`` (T, H, W, 3) uint8, and
    a flag per frame saying whether it is a clip's first frame."""
    T = 1 + ae.tf * (latents - 1)
    mses, first = [], []
    for s in range(0, len(frames) - T + 1, T):
        clip = frames[s:s + T]
        v = torch.from_numpy(clip).permute(0, 3, 1, 2).float()[None] / 127.5 - 1.0
        rec = to_uint8_frames(ae.decode(ae.encode(v))[0])
        mses += list(((rec.astype(np.float64) - clip.astype(np.float64)) ** 2).mean(axis=(1, 2, 3)))
        first += [True] + [False] * (T - 1)
    return np.asarray(mses), np.asarray(first)


def psnr_of(mse: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(float(np.mean(mse)), 1e-12)))


def evaluate(suite_dir, checkpoint=None, max_frames: int = 64, latents: int = 4) -> dict:
    cfg, ae = load_autoencoder(checkpoint)
    mses, firsts = [], []
    for t in load_suite(suite_dir).tasks:
        fr = t.gt_frames()[:max_frames]
        if fr.shape[1:3] != (cfg.data.height, cfg.data.width):
            raise ValueError(f"{t.task_id}: frames {fr.shape[1:3]} != the autoencoder's {cfg.data.height}x{cfg.data.width}")
        m, f = clip_psnr(ae, np.ascontiguousarray(fr), latents)
        mses.append(m)
        firsts.append(f)
        t.release()
    m, f = np.concatenate(mses), np.concatenate(firsts)
    per = 10 * np.log10(255.0 ** 2 / np.maximum(m, 1e-12))
    return {"frames": int(len(m)), "mean_psnr": float(per.mean()), "pooled_psnr": psnr_of(m),
            "first_psnr": psnr_of(m[f]), "group_psnr": psnr_of(m[~f])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", required=True)
    p.add_argument("--checkpoint", default=None, help="directory with config.yaml + model.safetensors (default: bundled)")
    p.add_argument("--max-frames", type=int, default=64)
    p.add_argument("--latents", type=int, default=4, help="latent frames per clip")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    r = evaluate(a.suite, a.checkpoint, a.max_frames, a.latents)
    print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())
          + f" (load average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
