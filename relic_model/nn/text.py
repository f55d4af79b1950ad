"""Offline text encoder: hashed words + a small transformer (no download, ever).

Tokenisation: lower-case, split on anything that is not a letter or digit; each word maps to
bucket ``1 + crc32(word) % (buckets - 1)`` (bucket 0 is BOS). Sequences are BOS + up to
``max_tokens - 1`` words, padded to ``max_tokens``.

Embedding: a FIXED table (buffer, seeded by ``seed``, rows ~ N(0, 1/dim)) so that the encoder is
fully determined by its config even without trained weights (a "hashed embedding bag"), followed
by sinusoidal positions and ``layers`` trainable pre-norm transformer layers (their weights live
in the model checkpoint). Output (B, max_tokens, dim) float32 with padding positions exactly 0.
"""
from __future__ import annotations

import math
import re
import zlib

import torch
import torch.nn as nn

_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str, buckets: int, max_tokens: int) -> list[int]:
    """Bucket ids: [0 (BOS), word buckets...] truncated to ``max_tokens``."""
    words = _WORD.findall(str(text).lower())
    ids = [0] + [1 + zlib.crc32(w.encode("utf-8")) % (buckets - 1) for w in words]
    return ids[:max_tokens]


def _sinusoid(n: int, dim: int) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(dim // 2, dtype=torch.float64)[None]
    ang = pos / (10000.0 ** (2 * i / dim))
    out = torch.zeros(n, dim, dtype=torch.float64)
    out[:, 0::2] = ang.sin()
    out[:, 1::2 if dim % 2 == 0 else slice(1, dim - 1, 2)] = ang.cos()[:, : out[:, 1::2].shape[1]]
    return out.float()


class TextEncoder(nn.Module):
    """``encode_text(list[str]) -> (B, max_tokens, dim)``; see module docstring."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        g = torch.Generator().manual_seed(int(cfg.seed))
        table = torch.randn(cfg.buckets, cfg.dim, generator=g) / math.sqrt(cfg.dim)
        self.register_buffer("table", table, persistent=False)
        self.register_buffer("positions", _sinusoid(cfg.max_tokens, cfg.dim) * 0.1, persistent=False)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(cfg.dim, cfg.heads, dim_feedforward=2 * cfg.dim, dropout=0.0,
                                       batch_first=True, norm_first=True) for _ in range(cfg.layers))
        self.out_norm = nn.LayerNorm(cfg.dim)

    @property
    def device(self) -> torch.device:
        return self.table.device

    def token_ids(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (B, L) long, valid (B, L) bool) for ``texts``."""
        L = self.cfg.max_tokens
        ids = torch.zeros(len(texts), L, dtype=torch.long)
        valid = torch.zeros(len(texts), L, dtype=torch.bool)
        for b, t in enumerate(texts):
            tok = tokenize(t, self.cfg.buckets, L)
            ids[b, :len(tok)] = torch.tensor(tok)
            valid[b, :len(tok)] = True
        return ids.to(self.device), valid.to(self.device)

    def forward(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = self.table[ids] + self.positions[: ids.shape[1]]
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=~valid)
        x = self.out_norm(x)
        return x * valid.unsqueeze(-1).to(x.dtype)

    def encode_text(self, texts: list[str] | str) -> torch.Tensor:
        """Encode prompts -> (B, max_tokens, dim) float32 on the module's device."""
        if isinstance(texts, str):
            texts = [texts]
        ids, valid = self.token_ids(list(texts))
        return self.forward(ids, valid)


__all__ = ["TextEncoder", "tokenize"]
