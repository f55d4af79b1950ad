"""Sample videos written during training: a PNG strip (frames side by side, rows = samples) and
an animated GIF per call, under ``<stage_dir>/samples/step_XXXXXXXX.{png,gif}``.

Input video tensors are (B, T, 3, H, W) floats in [-1, 1] (the autoencoder's pixel range).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datagen.atomic import atomic_write


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """(B, T, 3, H, W) in [-1, 1] -> (B, T, H, W, 3) uint8."""
    v = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return v.permute(0, 1, 3, 4, 2).cpu().numpy()


def write_samples(video: torch.Tensor, out_dir: str | os.PathLike, step: int, max_frames: int = 16) -> list[Path]:
    frames = to_uint8(video)
    B, T, H, W, _ = frames.shape
    idx = np.linspace(0, T - 1, min(T, max_frames)).round().astype(int)
    strip = np.concatenate([np.concatenate(list(frames[b, idx]), axis=1) for b in range(B)], axis=0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"step_{step:08d}.png"
    gif = out / f"step_{step:08d}.gif"
    atomic_write(png, lambda tmp: Image.fromarray(strip).save(tmp), suffix=".png")
    grid = [Image.fromarray(np.concatenate(list(frames[:, t]), axis=0)) for t in range(T)]
    atomic_write(gif, lambda tmp: grid[0].save(tmp, save_all=True, append_images=grid[1:], duration=62, loop=0),
                 suffix=".gif")
    return [png, gif]
