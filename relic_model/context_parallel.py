"""Context (sequence) parallelism for the RELIC DiT: one sample's tokens sharded over ranks.

Why: at 20 s a sample is 80 latent frames x 1560 tokens = 124,800 tokens; the 14B DiT keeps
~87 GiB of activations for it even with bf16 and activation checkpointing (``relic train plan
--config relic_model/configs/gpu14b.yaml --gpus 32``). With context-parallel degree ``c`` each
rank of a CP group holds the activations of ``1/c`` of the tokens.

How (exact, no approximation):

- ``enable_context_parallel(dit, group)`` attaches a :class:`ContextParallel` to a
  :class:`~relic_model.nn.dit.RelicDiT`. Every forward then builds a :class:`ShardLayout` for its
  ``F`` latent frames: the frames are split into ``c`` contiguous shards of ``s = ceil(F / c)``
  frames (the last shards padded with zero frames whose outputs and keys are discarded). The DiT
  embeds the whole input (cheap: latents, per-frame conditioning), keeps its shard of the token
  stream, runs every block on it, and all-gathers the head's input at the end, so every rank returns
  the full output and the loss is computed identically on every rank of the group.
- Self-attention: each rank projects Q/K/V for its tokens; K and V (after QK-norm, pose and RoPE)
  are all-gathered per layer in token order, so every rank attends its queries over the full key
  sequence [KV cache | all current tokens]. Block-causal attention is applied by GLOBAL token index:
  a query at global position p in segment j sees the cached keys and the current keys below that
  segment's end (one mask-free SDPA per (segment x local shard) piece, as the chunked path does;
  no N x N mask). KV-cache commits receive the gathered (full) K/V, so the cache is the same on
  every rank of the group and everything downstream of it (memory compression, read budgets,
  replay) is unchanged.
- Gradients: the K/V gather's backward sums the key/value gradients of all ranks (reduce-scatter)
  and keeps this rank's part; the output gather's backward keeps this rank's slice, scaled by ``c``.
  Each rank's parameter gradient is then ``c`` x (its tokens' share of the full gradient) for the
  sharded part (plus the full gradient of the replicated embedding/head part), so the mean over a
  CP group that DDP or FSDP2 computes anyway equals the full single-process gradient. A run with
  ``W`` ranks and CP degree ``c`` is data-parallel over ``W / c`` groups: ranks ``g c .. g c + c - 1``
  form CP group ``g`` and take the same batch rows (``distributed.rank_slice`` uses the
  data-parallel rank).

Communication per DiT block and sample: forward all-gathers K and V (``2 T D`` elements, each rank
receiving ``(c - 1) / c`` of them); backward reduce-scatters their gradients (the same volume)
and, with activation checkpointing, repeats the forward all-gather during recomputation.

Limits: attention implementation ``chunked`` only (``flex`` raises at enable time); the shards are
contiguous, so under block-causal attention later shards attend to more keys (no load balancing);
all ranks of a CP group must run every forward of the model together (as FSDP already requires).
Tested on CPU with 2 gloo processes (``tests/relic_model/test_context_parallel.py``): outputs and
gradients equal to one process for bidirectional, block-causal, KV-cache (hybrid forcing) and
checkpointed bf16 passes, and with FSDP2 on top.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _pad_to(x: torch.Tensor, dim: int, length: int) -> torch.Tensor:
    """``x`` zero-padded at the end of ``dim`` to ``length`` (differentiable)."""
    extra = length - x.shape[dim]
    if extra <= 0:
        return x
    pad = [0, 0] * (x.dim() - 1 - dim) + [0, extra]
    return F.pad(x, pad)


def _take(x: torch.Tensor, dim: int, start: int, length: int) -> torch.Tensor:
    """``x[start:start + length]`` along ``dim``, zero-padded where it runs past the end."""
    have = max(0, min(length, x.shape[dim] - start))
    part = x.narrow(dim, min(start, x.shape[dim]), have)
    return _pad_to(part, dim, length)


def _all_gather_cat(x: torch.Tensor, dim: int, group, size: int, total: int) -> torch.Tensor:
    """Every rank's ``x`` concatenated along ``dim``, the first ``total`` entries kept (a new tensor,
    not a view: FSDP2 warns about modules returning views)."""
    x = x.contiguous()
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x, group=group)
    out = torch.cat(parts, dim)
    return out if out.shape[dim] == total else out.narrow(dim, 0, total).contiguous()


class _GatherKV(torch.autograd.Function):
    """All-gather along ``dim`` (equal shards), keep the first ``total``; backward: sum of every
    rank's gradient for this rank's shard (reduce-scatter)."""

    @staticmethod
    def forward(ctx, x, dim, total, group, size, rank):
        ctx.dim, ctx.group, ctx.size, ctx.rank, ctx.local = dim, group, size, rank, x.shape[dim]
        return _all_gather_cat(x, dim, group, size, total)

    @staticmethod
    def backward(ctx, g):
        g = _pad_to(g, ctx.dim, ctx.size * ctx.local).contiguous()
        chunks = [c.contiguous() for c in g.chunk(ctx.size, ctx.dim)]
        out = torch.empty_like(chunks[ctx.rank])
        dist.reduce_scatter(out, chunks, op=dist.ReduceOp.SUM, group=ctx.group)
        return out, None, None, None, None, None


class _GatherOutput(torch.autograd.Function):
    """All-gather along ``dim`` (equal shards), keep the first ``total``; backward: this rank's
    slice of the (identical on every rank) gradient, times the group size (see module doc)."""

    @staticmethod
    def forward(ctx, x, dim, total, group, size, rank):
        ctx.dim, ctx.size, ctx.rank, ctx.local = dim, size, rank, x.shape[dim]
        return _all_gather_cat(x, dim, group, size, total)

    @staticmethod
    def backward(ctx, g):
        return _take(g, ctx.dim, ctx.rank * ctx.local, ctx.local) * ctx.size, None, None, None, None, None


@dataclass(frozen=True)
class ShardLayout:
    """This rank's shard of one DiT forward over ``frames`` latent frames of ``n`` tokens each.

    Immutable and passed down with the call, so activation checkpointing recomputes a block with
    the layout of the forward that created it."""
    group: object
    size: int
    rank: int
    frames: int            # latent frames of the call (F)
    per: int               # frames per shard (ceil(F / size)); shards past F are zero padding
    n: int                 # tokens per latent frame

    @property
    def tokens(self) -> int:
        return self.frames * self.n

    @property
    def first_token(self) -> int:
        return self.rank * self.per * self.n

    def shard(self, t, mod, pose_e, act_e, cos, sin):
        """Keep this rank's frames of the token stream ``t`` (B, F, n, D), the per-frame ``mod``
        (B, F, 6, D), ``pose_e``/``act_e`` (B, F, D) and the per-token RoPE tables (F n, hd/2)."""
        f0 = self.rank * self.per
        return (_take(t, 1, f0, self.per), _take(mod, 1, f0, self.per), _take(pose_e, 1, f0, self.per),
                _take(act_e, 1, f0, self.per), _take(cos, 0, f0 * self.n, self.per * self.n),
                _take(sin, 0, f0 * self.n, self.per * self.n))

    def gather_kv(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's K/V (B, heads, per n, hd) -> every current token's (B, heads, F n, hd)."""
        a = (2, self.tokens, self.group, self.size, self.rank)
        return _GatherKV.apply(k, *a), _GatherKV.apply(v, *a)

    def gather_output(self, t: torch.Tensor) -> torch.Tensor:
        """(B, per, n, X) on each rank -> (B, F, n, X) on every rank."""
        return _GatherOutput.apply(t, 1, self.frames, self.group, self.size, self.rank)

    def attend(self, q, k, v, n_cached: int, seg_ends: list[int] | None, key_mask=None) -> torch.Tensor:
        """This rank's queries q (B, H, per n, hd) over [cache | all current tokens] k/v, block-causal
        by global token index (``seg_ends`` in global current-token positions, None = full)."""
        nq, q0, T = q.shape[2], self.first_token, self.tokens
        if seg_ends is not None and len(seg_ends) <= 1:
            seg_ends = None
        pieces, start = [], 0                              # (local start, local end, visible keys)
        for end in (seg_ends if seg_ends is not None else [T]):
            a, b = max(start, q0), min(end, q0 + nq)
            if a < b:
                pieces.append((a - q0, b - q0, n_cached + end))
            start = end
        if q0 + nq > T:                                    # padding queries: any keys, output discarded
            pieces.append((max(T, q0) - q0, nq, n_cached + T))
        outs = []
        for a, b, L in pieces:
            mask = None
            if key_mask is not None:
                mask = torch.cat([key_mask, key_mask.new_ones(L - n_cached)]).unsqueeze(0)
            outs.append(F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, :L], v[:, :, :L], attn_mask=mask))
        return torch.cat(outs, 2)


class ContextParallel:
    """A DiT's context-parallel group (``group`` None = the default group)."""

    def __init__(self, group=None):
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("context parallelism needs an initialised process group (run under torchrun)")
        self.group = group
        self.size = dist.get_world_size(group)
        self.rank = dist.get_rank(group)

    def layout(self, frames: int, n: int) -> ShardLayout:
        return ShardLayout(self.group, self.size, self.rank, int(frames), -(-int(frames) // self.size), int(n))


def enable_context_parallel(dit, group=None) -> ContextParallel:
    """Shard every forward of ``dit`` (a RelicDiT) over the ranks of ``group`` (see module doc)."""
    if getattr(dit, "attn_impl", "chunked") != "chunked":
        raise ValueError(f"context parallelism computes block-causal attention as chunked SDPA; set "
                         f"dit.attention: chunked (got {dit.attn_impl!r})")
    cp = ContextParallel(group)
    dit.context_parallel = cp if cp.size > 1 else None
    return cp


def disable_context_parallel(dit) -> None:
    dit.context_parallel = None


def context_parallel_groups(degree: int):
    """Create the CP groups of the default group (ranks ``g c .. g c + c - 1``; every rank must call
    this) and return this rank's group (None = the whole default group)."""
    world, rank = dist.get_world_size(), dist.get_rank()
    if degree < 1 or world % degree:
        raise ValueError(f"context parallel degree {degree} must divide the world size {world}")
    if degree == world:
        return None
    mine = None
    for g in range(world // degree):
        ranks = list(range(g * degree, (g + 1) * degree))
        grp = dist.new_group(ranks)
        if rank in ranks:
            mine = grp
    return mine


__all__ = ["ContextParallel", "ShardLayout", "enable_context_parallel", "disable_context_parallel",
           "context_parallel_groups"]
