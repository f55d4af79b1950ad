"""Attention layers of the RELIC DiT.

:class:`SelfAttention` projects Q, K, V; applies QK-norm (RMSNorm over the model width); ADDS the
absolute-pose embedding to Q and K only (V never sees poses: "poses are proxies for retrieving
spatial content"); rotates Q and K with 3-axis RoPE; attends with
:func:`attend` over [cached K/V (if a :class:`~relic_model.nn.memory.KVCache` is given, or
explicit ``past`` K/V under activation checkpointing)] + the current tokens, optionally committing
the current K/V to the cache. A cache with a read budget
(:meth:`~relic_model.nn.memory.KVCache.read_mask`) hides unselected compressed-memory tokens with a
1-D boolean key mask; window and current tokens stay visible.

Block-causal attention never builds an N x N mask unless asked to ("dense", the reference): the
current tokens are split into consecutive query segments (generation blocks) with token ends
``seg_ends``; segment j sees every cached token and the current tokens ``[0, seg_ends[j])``.
"chunked" runs one mask-free ``scaled_dot_product_attention`` per segment over that key prefix
(only a 1-D read mask, when present); "flex" runs ``flex_attention`` with a ``BlockMask`` built
from the segment ends in O(N / 128)^2 integers (see :func:`block_causal_block_mask`).

:class:`CrossAttention` attends from video tokens to projected text tokens (text K/V can be
precomputed once per prompt with :meth:`CrossAttention.text_kv`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rope import apply_rope


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def dense_block_causal_mask(n_cached: int, seg_ends: list[int], device=None,
                            key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The reference (nq, n_cached + nq) boolean mask (True = may attend) that ``attend`` avoids."""
    nq = seg_ends[-1]
    limit = n_cached + _query_limits(seg_ends, device)
    m = torch.arange(n_cached + nq, device=device)[None, :] < limit[:, None]
    if key_mask is not None:
        m = m & torch.cat([key_mask.to(device), key_mask.new_ones(nq).to(device)])[None, :]
    return m


def _query_limits(seg_ends: list[int], device=None) -> torch.Tensor:
    """(nq,) long: number of current tokens visible to each query (its segment's end)."""
    ends = torch.tensor(seg_ends, dtype=torch.long, device=device)
    sizes = torch.diff(ends, prepend=ends.new_zeros(1))
    return torch.repeat_interleave(ends, sizes)


_FLEX_BLOCK = 128


def block_causal_block_mask(n_cached: int, seg_ends: list[int], device=None, key_mask: torch.Tensor | None = None,
                            block: int = _FLEX_BLOCK):
    """A flex_attention ``BlockMask`` for block-causal attention over [cache | current] keys.

    Built from per-tile bounds, never from a dense mask: query tile i (rows ``i*block ..``) needs
    the KV tiles below ``ceil(max limit in the tile / block)``; ``mask_mod`` resolves partial tiles
    from two O(N) tensors (per-query limit, optional key mask)."""
    from torch.nn.attention.flex_attention import BlockMask
    nq = seg_ends[-1]
    nk = n_cached + nq
    limit = n_cached + _query_limits(seg_ends, device)                 # (nq,) keys visible
    qt, kt = -(-nq // block), -(-nk // block)
    pad = qt * block - nq
    lim_t = torch.cat([limit, limit[-1:].expand(pad)]).view(qt, block).amax(1)
    kv_num = (-(-lim_t // block)).to(torch.int32)                      # (qt,)
    kv_idx = torch.arange(kt, dtype=torch.int32, device=device).expand(qt, kt).contiguous()
    keep = None if key_mask is None else torch.cat([key_mask.to(device), key_mask.new_ones(nq).to(device)])

    def mask_mod(b, h, q_idx, kv_idx_):
        ok = kv_idx_ < limit[q_idx]
        if keep is not None:
            ok = ok & keep[kv_idx_]
        return ok
    return BlockMask.from_kv_blocks(kv_num[None, None], kv_idx[None, None], BLOCK_SIZE=block, mask_mod=mask_mod,
                                    seq_lengths=(nq, nk))


_flex_compiled = None


def _flex(q, k, v, block_mask):
    """flex_attention, compiled on CUDA (fused kernel), eager elsewhere (correct but unfused)."""
    global _flex_compiled
    from torch.nn.attention.flex_attention import flex_attention
    if q.is_cuda:
        if _flex_compiled is None:
            _flex_compiled = torch.compile(flex_attention, dynamic=False)
        return _flex_compiled(q, k, v, block_mask=block_mask)
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        return flex_attention(q, k, v, block_mask=block_mask)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_cached: int = 0, seg_ends: list[int] | None = None,
           key_mask: torch.Tensor | None = None, impl: str = "chunked") -> torch.Tensor:
    """Attention of current queries q (B, H, nq, hd) over keys/values (B, H, n_cached + nq, hd).

    ``seg_ends``: None (every query sees every key) or the increasing token ends of the query
    segments (last = nq); segment j sees the cached keys and current keys ``< seg_ends[j]``.
    ``key_mask``: optional bool (n_cached,) over the cached keys (True = visible)."""
    nq = q.shape[2]
    if seg_ends is not None and len(seg_ends) <= 1:
        seg_ends = None
    if seg_ends is None:
        mask = None
        if key_mask is not None:
            mask = torch.cat([key_mask, key_mask.new_ones(nq)]).unsqueeze(0).expand(nq, -1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if seg_ends[-1] != nq:
        raise ValueError(f"segment ends {seg_ends} must end at the {nq} current tokens")
    if impl == "dense":
        mask = dense_block_causal_mask(n_cached, seg_ends, q.device, key_mask)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if impl == "flex":
        if not q.is_cuda and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
            raise NotImplementedError("dit.attention 'flex' has no backward on CPU in torch (flex_attention is "
                                      "CUDA-only for training); use 'chunked' there")
        return _flex(q, k, v, block_causal_block_mask(n_cached, seg_ends, q.device, key_mask))
    if impl != "chunked":
        raise ValueError(f"attention impl must be chunked, flex or dense, got {impl!r}")
    outs, start = [], 0
    for end in seg_ends:
        L = n_cached + end
        mask = None
        if key_mask is not None:
            mask = torch.cat([key_mask, key_mask.new_ones(end)]).unsqueeze(0)   # (1, L): 1-D, broadcast
        outs.append(F.scaled_dot_product_attention(q[:, :, start:end], k[:, :, :L], v[:, :, :L], attn_mask=mask))
        start = end
    return torch.cat(outs, 2)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, D) -> (B, heads, N, D / heads)."""
    B, N, D = x.shape
    return x.view(B, N, heads, D // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    B, H, N, hd = x.shape
    return x.transpose(1, 2).reshape(B, N, H * hd)


class _Projections(nn.Module):
    """Q/K/V/output projections and the optional QK-norm shared by self- and cross-attention."""

    def __init__(self, dim: int, heads: int, qk_norm: bool = True):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.q_norm = RMSNorm(dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(dim) if qk_norm else nn.Identity()


class SelfAttention(_Projections):
    def __init__(self, dim: int, heads: int, qk_norm: bool = True):
        super().__init__(dim, heads, qk_norm)
        self.pose_q = nn.Linear(dim, dim)   # absolute-pose embedding -> added to Q
        self.pose_k = nn.Linear(dim, dim)   # absolute-pose embedding -> added to K

    def qkv(self, x: torch.Tensor, pose: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, F, n, D) tokens of F latent frames; pose (B, F, D) per-frame pose embedding or None.
        Returns q, k, v (B, F, n, D) before RoPE. The pose only enters q and k."""
        q = self.q_norm(self.to_q(x))
        k = self.k_norm(self.to_k(x))
        v = self.to_v(x)
        if pose is not None:
            q = q + self.pose_q(pose).unsqueeze(2)
            k = k + self.pose_k(pose).unsqueeze(2)
        return q, k, v

    def forward(self, x, pose, cos, sin, seg_ends=None, cache=None, layer: int = 0, plan=None, impl: str = "chunked",
                past=None, return_kv: bool = False, cp=None):
        """x (B, F, n, D); cos/sin (F*n, hd/2); seg_ends: query segment token ends among the current
        tokens (block-causal) or None (all current tokens see each other); cache/layer/plan: KVCache
        to read (and commit to when ``plan``). ``past`` = (k, v, key_mask) held K/V read before the
        call (instead of ``cache``; activation checkpointing), ``return_kv`` also returns this call's
        rotated k, v (B, heads, F*n, hd) for the caller to commit. ``cp``: a context-parallel
        :class:`~relic_model.context_parallel.ShardLayout` (x holds this rank's tokens; K/V of
        all current tokens are gathered and attention is block-causal by global index) or None."""
        B, Fr, n, D = x.shape
        q, k, v = self.qkv(x, pose)
        q, k = q.reshape(B, Fr * n, D), k.reshape(B, Fr * n, D)
        if cos.dtype != q.dtype:   # autocast: rotate in the (fp32) angle precision, attend in q's dtype
            q = apply_rope(_heads(q.to(cos.dtype), self.heads), cos, sin).to(v.dtype)
            k = apply_rope(_heads(k.to(cos.dtype), self.heads), cos, sin).to(v.dtype)
        else:
            q = apply_rope(_heads(q, self.heads), cos, sin)
            k = apply_rope(_heads(k, self.heads), cos, sin)
        v = _heads(v.reshape(B, Fr * n, D), self.heads)
        if cp is not None:   # context parallel: every current token's K/V (commits get them all)
            k, v = cp.gather_kv(k, v)
        read = None
        if past is not None:
            kp, vp, read = past
            kk, vv = (torch.cat([kp.to(k.dtype), k], 2), torch.cat([vp.to(v.dtype), v], 2)) if kp is not None else (k, v)
        elif cache is not None:
            kk, vv = cache.keys_values(layer, k, v)
            if kk.shape[2] > k.shape[2]:
                read = cache.read_mask(kk.device)   # memory read budget (None = all)
        else:
            kk, vv = k, v
        if cp is not None:
            out = cp.attend(q, kk, vv, kk.shape[2] - k.shape[2], seg_ends, read)
        else:
            out = attend(q, kk, vv, kk.shape[2] - k.shape[2], seg_ends, read, impl)
        if plan is not None:
            cache.commit(layer, k, v, plan)
        out = self.to_out(_merge(out)).view(B, Fr, n, D)
        return (out, k, v) if return_kv else out


class CrossAttention(_Projections):

    def text_kv(self, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ctx (B, L, D) projected text -> (k, v) (B, heads, L, hd)."""
        return _heads(self.k_norm(self.to_k(ctx)), self.heads), _heads(self.to_v(ctx), self.heads)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        shape = x.shape
        B, D = shape[0], shape[-1]
        q = _heads(self.q_norm(self.to_q(x.reshape(B, -1, D))), self.heads)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return self.to_out(_merge(out)).view(shape)


__all__ = ["SelfAttention", "CrossAttention", "RMSNorm", "attend", "dense_block_causal_mask", "block_causal_block_mask"]
