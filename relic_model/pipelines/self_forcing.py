"""Self-Forcing block-wise autoregressive rollout of the few-step student.

The student generates latent blocks of ``block_frames`` frames one after the other, each with
its own few-step denoising schedule (``timesteps``, e.g. [1, .75, .5, .25]), conditioned on the KV
cache of everything generated before. Per block b (Self-Forcing, Huang et al. 2025):

1. ``x = eps_b``; for k = 0..e_b: ``x0_hat = G(x, t_k | cache)``; if k < e_b: re-noise
   ``x = (1 - t_{k+1}) x0_hat + t_{k+1} eps'`` with fresh noise. ``e_b`` is the block's random
   exit step; only the exit step can carry gradient (the earlier steps run without grad).
2. The block output is ``x0_b = x0_hat`` at the exit step.
3. ``x0_b`` (detached) is committed to the KV cache by one more pass at sigma 0.

Gradients therefore never cross blocks through the cache, which is what makes replayed
back-propagation exact: block b's output depends on the parameters only through its exit step,
whose inputs (``x`` at the exit step, the cache before b) are recorded as a ``BlockRecord``.

``BlockGenerator`` is the interface a network must offer (see ``relic_model.pipelines.dit_generator``
for the RelicDiT adapter). Latent frame 0 is the clean first-image latent, committed before block 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import torch

from relic_model.pipelines.conditioning import Cond


class BlockGenerator(Protocol):
    """A causal few-step generator with a KV cache. ``x`` (B, f, C, h, w), ``sigma`` (B, f)."""

    def new_cache(self, batch: int, device=None, dtype=None) -> Any: ...

    def denoise(self, x_t: torch.Tensor, sigma: torch.Tensor, cond: Cond, cache: Any,
                frame_offset: int) -> torch.Tensor:
        """Clean estimate x0_hat for frames [frame_offset, frame_offset + f); cache unchanged."""

    def commit(self, x0: torch.Tensor, cond: Cond, cache: Any, frame_offset: int) -> None:
        """Append clean frames (sigma 0) at ``frame_offset`` to the cache (no grad)."""


@dataclass
class BlockRecord:
    """What replay needs to regenerate block b with autograd."""
    index: int
    frame_offset: int          # absolute latent frame index of the block's first frame
    x_exit: torch.Tensor       # (B, f, C, h, w) input at the exit step
    sigma_exit: torch.Tensor   # (B, f)
    exit_step: int
    x0: torch.Tensor           # (B, f, C, h, w) block output (detached)


@dataclass
class Rollout:
    video: torch.Tensor             # (B, F, C, h, w) incl. frame 0 when given; detached unless naive
    records: list[BlockRecord]
    first_frame: bool
    block_frames: int


def _sig(level: float, b: int, f: int, like: torch.Tensor) -> torch.Tensor:
    return torch.full((b, f), float(level), dtype=like.dtype, device=like.device)


def rollout(gen: BlockGenerator, first_latent: torch.Tensor | None, cond: Cond, num_blocks: int,
            block_frames: int, timesteps: Sequence[float], generator: torch.Generator,
            exit_steps: Sequence[int] | None = None, latent_shape: tuple[int, int, int] | None = None,
            grad_exit: bool = False, progress: bool = False) -> Rollout:
    """Roll out ``num_blocks`` blocks. ``grad_exit=True`` keeps each exit step's autograd graph
    (the naive full-graph baseline); otherwise everything runs under ``torch.no_grad``.

    ``first_latent`` (B, 1, C, h, w) or None (then ``latent_shape`` = (C, h, w) is required).
    ``exit_steps`` per block (default: the last step, i.e. full sampling). Noise is drawn from
    ``generator`` (CPU) in a fixed order so a rollout is reproducible from its seed.
    """
    if first_latent is not None:
        B, _, C, h, w = first_latent.shape
        ref = first_latent
    else:
        if latent_shape is None:
            raise ValueError("latent_shape is required when first_latent is None")
        B = next(iter(cond.per_frame.values())).shape[0] if cond.per_frame else 1
        C, h, w = latent_shape
        ref = torch.zeros((), dtype=torch.float32)
    K = len(timesteps)
    exits = list(exit_steps) if exit_steps is not None else [K - 1] * num_blocks
    if len(exits) != num_blocks or any(not 0 <= e < K for e in exits):
        raise ValueError(f"exit_steps must be {num_blocks} ints in [0, {K})")
    off0 = 1 if first_latent is not None else 0
    cache = gen.new_cache(B, device=ref.device, dtype=ref.dtype)
    outs: list[torch.Tensor] = []
    records: list[BlockRecord] = []
    with torch.no_grad():
        if first_latent is not None:
            gen.commit(first_latent, cond.frames(0, 1), cache, 0)
    blocks = range(num_blocks)
    if progress:
        from tqdm import tqdm
        blocks = tqdm(blocks, desc="rollout", leave=False)
    for b in blocks:
        fo = off0 + b * block_frames
        cb = cond.frames(fo, fo + block_frames)
        shape = (B, block_frames, C, h, w)
        x = torch.randn(shape, generator=generator, dtype=torch.float32).to(ref.device, ref.dtype)
        with torch.no_grad():
            for k in range(exits[b]):
                x0 = gen.denoise(x, _sig(timesteps[k], B, block_frames, ref), cb, cache, fo)
                n = torch.randn(shape, generator=generator, dtype=torch.float32).to(ref.device, ref.dtype)
                t1 = timesteps[k + 1]
                x = (1 - t1) * x0 + t1 * n
        s_exit = _sig(timesteps[exits[b]], B, block_frames, ref)
        with torch.set_grad_enabled(grad_exit and torch.is_grad_enabled()):
            x0 = gen.denoise(x, s_exit, cb, cache, fo)
        records.append(BlockRecord(b, fo, x.detach(), s_exit, exits[b], x0.detach()))
        outs.append(x0)
        with torch.no_grad():
            gen.commit(x0.detach(), cb, cache, fo)
    parts = ([first_latent] if first_latent is not None else []) + outs
    video = torch.cat(parts, 1)
    return Rollout(video, records, first_latent is not None, block_frames)


def sample_exit_steps(num_blocks: int, num_steps: int, generator: torch.Generator,
                      same_for_all: bool = True) -> list[int]:
    """Random exit steps (Self-Forcing): one shared by all blocks by default."""
    if same_for_all:
        e = int(torch.randint(0, num_steps, (1,), generator=generator))
        return [e] * num_blocks
    return [int(v) for v in torch.randint(0, num_steps, (num_blocks,), generator=generator)]
