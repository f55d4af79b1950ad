"""Replayed back-propagation for self-forcing DMD distillation (RELIC Sec. training).

Naively, back-propagating a loss on a whole self-forced video keeps the autograd graph of every
block alive at once (memory grows with the video length). Replay splits the work in three passes
that give the SAME parameter gradients with the memory of about one block:

(a) ``rollout`` the whole video block by block with no autograd (KV cache), recording for each
    block its exit-step input and output (``BlockRecord``);
(b) compute the DMD gradient on the detached video once (``dmd_output_grad``): the per-block
    slices of ``dL/dx`` (proportional to the cached score differences ``s_real - s_fake``);
(c) rebuild the KV cache from scratch and, block by block, re-run the exit step WITH autograd
    from the recorded input, call ``torch.autograd.backward(x0_b, dL/dx0_b)`` (the block's graph
    is freed right after), then commit the recorded clean output to the cache.

Gradients accumulate in ``.grad``; the caller performs ONE optimizer step per full replay. Under
DDP/FSDP, pass ``no_sync`` so only the last block's backward all-reduces the accumulated grads.
Exactness holds because in self-forcing the cache is filled with detached outputs, so block b's
output depends on the parameters only through its own exit step (see ``self_forcing``).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch

from relic_model.objectives.dmd import dmd_gradient, dmd_loss, dmd_output_grad
from relic_model.objectives.flow_matching import add_noise, first_frame_clean_sigma
from relic_model.pipelines.conditioning import Cond
from relic_model.pipelines.self_forcing import BlockGenerator, Rollout

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, sigma (B,F)) -> x0_hat


def replay_backward(gen: BlockGenerator, ro: Rollout, cond: Cond, out_grad: torch.Tensor,
                    no_sync: Callable[[], ContextManager] | None = None,
                    on_block: Callable[[int], None] | None = None) -> None:
    """Pass (c): regenerate each block with autograd and back-propagate ``out_grad`` slices.

    ``out_grad`` is dL/d(video) with the shape of ``ro.video``. ``on_block(b)`` is called after
    block b's backward (its graph is already freed), e.g. for memory probes.
    """
    v = ro.video
    B = v.shape[0]
    cache = gen.new_cache(B, device=v.device, dtype=v.dtype)
    if ro.first_frame:
        with torch.no_grad():
            gen.commit(v[:, :1], cond.frames(0, 1), cache, 0)
    n = len(ro.records)
    for i, rec in enumerate(ro.records):
        f = rec.x0.shape[1]
        fo = rec.frame_offset
        cb = cond.frames(fo, fo + f)
        g = out_grad[:, fo:fo + f]
        ctx = no_sync() if (no_sync is not None and i < n - 1) else contextlib.nullcontext()
        with ctx:
            with torch.enable_grad():
                x0 = gen.denoise(rec.x_exit, rec.sigma_exit, cb, cache, fo)
                torch.autograd.backward(x0, g.to(x0.dtype))
        del x0
        if on_block is not None:
            on_block(i)
        with torch.no_grad():
            gen.commit(rec.x0, cb, cache, fo)


@dataclass
class DMDTargets:
    grad: torch.Tensor        # normalised DMD gradient g (B, F, C, h, w), 0 on frame 0
    out_grad: torch.Tensor    # dL/dx = g / N
    loss: float               # 0.5 mean(g^2) over loss frames (the surrogate's value)
    sigma: torch.Tensor       # (B,) noise level used
    loss_mask: torch.Tensor   # (B, F)


@torch.no_grad()
def dmd_targets(video: torch.Tensor, real_fn: ScoreFn, fake_fn: ScoreFn, first_frame: bool,
                generator: torch.Generator, sigma_range: tuple[float, float] = (0.02, 0.98)) -> DMDTargets:
    """Pass (b): noise the detached video at one sigma ~ U(sigma_range) per sample (first frame
    clean), query both score models, and return the DMD gradient and dL/dx."""
    x = video.detach()
    B, F = x.shape[:2]
    lo, hi = sigma_range
    s = lo + (hi - lo) * torch.rand((B,), generator=generator, dtype=torch.float64)
    sigma = first_frame_clean_sigma(s.to(x.dtype), F) if first_frame else s.to(x.dtype)[:, None].expand(B, F).clone()
    eps = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    if first_frame:
        eps[:, 0] = 0.0
    sigma = sigma.to(x.device)
    x_t = add_noise(x, eps, sigma)
    x0_real = real_fn(x_t, sigma)
    x0_fake = fake_fn(x_t, sigma)
    mask = torch.ones((B, F), dtype=torch.bool, device=x.device)
    if first_frame:
        mask[:, 0] = False
    g = dmd_gradient(x, x0_real, x0_fake, mask)
    out = dmd_output_grad(g, mask)
    loss = float(dmd_loss(x, g, mask))
    return DMDTargets(g, out, loss, s, mask)


def naive_full_graph_backward(video_with_graph: torch.Tensor, targets: DMDTargets) -> torch.Tensor:
    """Reference: back-propagate the DMD surrogate through a video whose blocks all still hold
    their graphs (``rollout(..., grad_exit=True)``). Returns the loss tensor."""
    loss = dmd_loss(video_with_graph, targets.grad, targets.loss_mask)
    loss.backward()
    return loss
