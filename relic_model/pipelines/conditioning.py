"""Per-clip conditioning passed to the networks, sliceable along latent frames.

``Cond.per_frame`` holds tensors whose dim 1 is the latent frame axis (e.g. ``actions``
(B, F, 4, 13), ``poses`` (B, F, 4, 12)); ``Cond.global_`` holds the rest (e.g. ``text`` token
embeddings (B, L, D) and their mask). ``Cond.frames(a, b)`` slices every per-frame tensor.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Cond:
    per_frame: dict[str, torch.Tensor] = field(default_factory=dict)
    global_: dict[str, Any] = field(default_factory=dict)

    def frames(self, a: int, b: int) -> "Cond":
        return Cond({k: v[:, a:b] for k, v in self.per_frame.items()}, dict(self.global_))

    def batch(self, idx) -> "Cond":
        """Select batch rows (``idx`` a slice or index tensor)."""
        g = {k: (v[idx] if isinstance(v, torch.Tensor) else v) for k, v in self.global_.items()}
        return Cond({k: v[idx] for k, v in self.per_frame.items()}, g)

    def to(self, *args, **kwargs) -> "Cond":
        g = {k: (v.to(*args, **kwargs) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
             for k, v in self.global_.items()}
        return Cond({k: v.to(*args, **kwargs) for k, v in self.per_frame.items()}, g)

    def with_global(self, **kw) -> "Cond":
        g = dict(self.global_)
        g.update(kw)
        return Cond(dict(self.per_frame), g)
