"""Exact parameter counts of the networks a config builds, without memory: each network is built
on the ``meta`` device and its parameters are counted.

``dit_parameters(cfg)`` decides whether a config is GPU-scale (``train/settings.py``) and, with
``model_parameters(cfg)``, sizes the training plan (``train/plan.py``).
"""
from __future__ import annotations

import copy

import torch

from relic_model.nn.autoencoder import VideoAutoencoder
from relic_model.nn.dit import RelicDiT
from relic_model.nn.text import TextEncoder


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _meta(build):
    with torch.device("meta"):
        return build()


def dit_parameters(cfg) -> int:
    """Exact parameter count of ``RelicDiT(cfg)`` (built on the meta device)."""
    return _count(_meta(lambda: RelicDiT(cfg)))


def model_parameters(cfg) -> dict[str, int]:
    """Parameter counts of the DiT, one of its blocks, the autoencoder and the text encoder."""
    dit = _meta(lambda: RelicDiT(cfg))
    c = copy.deepcopy(cfg.text)
    c.buckets = 2   # the hashed table is a (non-parameter) buffer; keep the meta build tiny
    return {"dit": _count(dit), "dit_block": _count(dit.blocks[0]), "autoencoder": _count(_meta(lambda: VideoAutoencoder(cfg))),
            "text": _count(_meta(lambda: TextEncoder(c)))}
