"""On-disk pools of encoded training clips (latents + controls + captions).

Encoding clips with the (frozen) autoencoder once and reusing them is what makes the diffusion
stages fast on CPU. A pool holds ``N`` clips of ``F`` latent frames sampled from ``CorpusClips``
(with its time-reverse augmentation) by a seeded generator:

    latents (N, F, C, h, w) float32   normalised latents (``VideoAutoencoder.encode``)
    actions (N, F, tf, 13)  float32   per-latent-frame actions (``relic_model.nn.control`` layout)
    poses   (N, F, tf, 12)  float32   per-latent-frame relative poses
    texts   N captions (safetensors metadata, JSON)

File: ``<cache_dir>/pool_F{F}_N{N}_{key}.safetensors`` where ``key`` hashes everything the content
depends on (corpus config hash, split, autoencoder weights hash, resolution, seed, augmentation),
so a stale pool is never reused. Written atomically by rank 0; other ranks wait and read it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from datagen.atomic import atomic_write
from relic_model.data.controls import clip_controls, num_video_frames
from relic_model.distributed import barrier


@dataclass
class LatentPool:
    latents: torch.Tensor
    actions: torch.Tensor
    poses: torch.Tensor
    texts: list[str]

    def __len__(self) -> int:
        return self.latents.shape[0]

    @property
    def num_frames(self) -> int:
        return self.latents.shape[1]


def pool_key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_pool(path: str | os.PathLike) -> LatentPool:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        t = {k: f.get_tensor(k) for k in ("latents", "actions", "poses")}
    return LatentPool(t["latents"], t["actions"], t["poses"], json.loads(meta.get("texts", "[]")))


def save_pool(pool: LatentPool, path: Path) -> None:
    tensors = {"latents": pool.latents.contiguous(), "actions": pool.actions.contiguous(),
               "poses": pool.poses.contiguous()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"texts": json.dumps(pool.texts)}))


@torch.no_grad()
def encode_pool(clips, autoencoder, num_clips: int, latent_frames: int, seed: int, batch: int = 8,
                progress: bool = False) -> LatentPool:
    """Sample ``num_clips`` clips (clip i from ``default_rng([seed, i])``) and encode them."""
    tf = autoencoder.tf
    T = num_video_frames(latent_frames, tf)
    lat, acts, poses, texts = [], [], [], []
    it = range(0, num_clips, batch)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc=f"encode {num_clips} clips x {latent_frames} latents", leave=False)
    dev = next(autoencoder.parameters()).device
    for s in it:
        frames = []
        for i in range(s, min(num_clips, s + batch)):
            c = clips.sample(T, np.random.default_rng([seed, i]))
            a, p = clip_controls(c.actions, c.gamma, c.poses, tf)
            frames.append(c.frames)
            acts.append(torch.from_numpy(a))
            poses.append(torch.from_numpy(p))
            texts.append(c.text)
        v = torch.from_numpy(np.stack(frames)).to(dev).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
        lat.append(autoencoder.encode(v).float().cpu())
    return LatentPool(torch.cat(lat), torch.stack(acts), torch.stack(poses), texts)


def build_or_load_pool(cache_dir: str | os.PathLike, key: str, clips, autoencoder, num_clips: int,
                       latent_frames: int, seed: int, info=None, progress: bool = False) -> LatentPool:
    cache_dir = Path(cache_dir)
    path = cache_dir / f"pool_F{latent_frames}_N{num_clips}_{key}.safetensors"
    is_main = info is None or info.is_main
    if is_main and not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        save_pool(encode_pool(clips, autoencoder, num_clips, latent_frames, seed, progress=progress), path)
    if info is not None:
        barrier(info)
    return load_pool(path)
