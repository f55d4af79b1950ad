"""Attention layers of the RELIC DiT.

:class:`SelfAttention` projects Q, K, V; applies QK-norm (RMSNorm over the model width); ADDS the
absolute-pose embedding to Q and K only (V never sees poses: "poses are proxies for retrieving
spatial content"); rotates Q and K with 3-axis RoPE; attends with
``F.scaled_dot_product_attention`` over [cached K/V (if a :class:`~relic_model.nn.memory.KVCache`
is given)] + the current tokens, optionally committing the current K/V to the cache. A cache with
a read budget (:meth:`~relic_model.nn.memory.KVCache.read_mask`) hides unselected compressed-memory
tokens with a boolean key mask; window and current tokens stay visible.

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

    def forward(self, x, pose, cos, sin, attn_mask=None, cache=None, layer: int = 0, plan=None) -> torch.Tensor:
        """x (B, F, n, D); cos/sin (F*n, hd/2); attn_mask bool (F*n, F*n) among current tokens (True =
        may attend) or None; cache/layer/plan: KVCache to read (and commit to when ``plan``)."""
        B, Fr, n, D = x.shape
        q, k, v = self.qkv(x, pose)
        q = apply_rope(_heads(q.reshape(B, Fr * n, D), self.heads), cos, sin)
        k = apply_rope(_heads(k.reshape(B, Fr * n, D), self.heads), cos, sin)
        v = _heads(v.reshape(B, Fr * n, D), self.heads)
        if cache is not None:
            kk, vv = cache.keys_values(layer, k, v)
            n_cached = kk.shape[2] - k.shape[2]
            read = cache.read_mask(kk.device) if n_cached else None   # memory read budget (None = all)
            if read is not None:
                if attn_mask is None:
                    attn_mask = torch.ones(k.shape[2], k.shape[2], dtype=torch.bool, device=kk.device)
                attn_mask = torch.cat([read.unsqueeze(0).expand(attn_mask.shape[0], n_cached), attn_mask], 1)
            elif attn_mask is not None and n_cached:
                attn_mask = torch.cat([attn_mask.new_ones(attn_mask.shape[0], n_cached), attn_mask], 1)
        else:
            kk, vv = k, v
        out = F.scaled_dot_product_attention(q, kk, vv, attn_mask=attn_mask)
        if plan is not None:
            cache.commit(layer, k, v, plan)
        return self.to_out(_merge(out)).view(B, Fr, n, D)


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


__all__ = ["SelfAttention", "CrossAttention", "RMSNorm"]
