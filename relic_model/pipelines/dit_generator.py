"""``BlockGenerator`` adapter for :class:`relic_model.nn.dit.RelicDiT` (block-causal student).

- ``denoise``: one student step, ``x0_hat = x_t - sigma * v`` with ``v = model(x_t, sigma, text,
  actions, poses, "block_causal", cache, frame_offset, update_cache=False)``.
- ``commit``: the clean block at sigma 0 with ``update_cache=True`` (always without autograd); with
  ``context_sigma = c > 0`` (``sampling.context_sigma``) the block enters the cache noised to sigma
  ``c`` instead (frame 0 stays clean), with noise seeded by ``(context_seed, frame_offset)`` so a
  replay rebuilds exactly the rollout's cache; with ``context_scope="window"`` the clean block is
  first committed ``memory_only`` so the compressed memory is pooled from clean K/V.

Text: ``cond.global_["text"]`` holds the (B, L, Dt) text-encoder output. The DiT caches the text
cross-attention K/V inside the KV cache; when ``denoise`` runs with autograd it recomputes them
(and restores the cache's no-grad copy afterwards) so the text projections receive gradients and no
graph ever lives inside the cache across blocks.

``model`` may be wrapped in DDP/FSDP: the wrapper is used for grad-enabled denoise calls (so
gradient synchronisation hooks fire), the bare module for no-grad calls. Under FSDP2 every rank
must make the same calls (each forward gathers parameters), and ``commit`` reshards the root.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from relic_model.config import check_context_scope
from relic_model.distributed import unwrap
from relic_model.nn.memory import wants_clean_memory_pass
from relic_model.objectives.dmd import cfg_combine
from relic_model.objectives.flow_matching import noised_context, x0_from_velocity
from relic_model.pipelines.conditioning import Cond


class DiTBlockGenerator:
    def __init__(self, model: nn.Module, memory: bool | None = None, context_sigma: float = 0.0,
                 context_seed: int = 0, context_scope: str = "all"):
        self.model = model
        self.memory = memory
        self.context_sigma = float(context_sigma)
        self.context_seed = int(context_seed)
        self.context_scope = check_context_scope(context_scope)

    @property
    def module(self) -> nn.Module:
        return unwrap(self.model)

    def new_cache(self, batch: int, device=None, dtype=None):
        return self.module.new_cache(memory=self.memory)

    def _call(self, x, sigma, cond: Cond, cache, frame_offset, update):
        pf = cond.per_frame
        net = self.model if torch.is_grad_enabled() else self.module
        return net(x, sigma, cond.global_["text"], pf["actions"], pf["poses"], "block_causal", cache, frame_offset, update)

    def denoise(self, x_t, sigma, cond: Cond, cache, frame_offset: int) -> torch.Tensor:
        if torch.is_grad_enabled() and cache is not None:
            saved = (cache.text_kv, cache.text_ref)
            cache.text_kv, cache.text_ref = None, None
            try:
                v = self._call(x_t, sigma, cond, cache, frame_offset, False)
            finally:
                cache.text_kv, cache.text_ref = saved
        else:
            v = self._call(x_t, sigma, cond, cache, frame_offset, False)
        return x0_from_velocity(x_t, sigma, v)

    def commit(self, x0, cond: Cond, cache, frame_offset: int) -> None:
        with torch.no_grad():
            g = (torch.Generator().manual_seed(self.context_seed * 1_000_003 + int(frame_offset))
                 if self.context_sigma > 0 else None)
            pf = cond.per_frame
            args = (cond.global_["text"], pf["actions"], pf["poses"], "block_causal", cache, frame_offset, True)
            if wants_clean_memory_pass(cache, self.context_sigma, self.context_scope):
                self.module(x0, torch.zeros(x0.shape[:2], dtype=x0.dtype, device=x0.device), *args, memory_only=True)
            x0, sig = noised_context(x0, self.context_sigma, g, frame_offset)
            self.module(x0, sig, *args)
        # FSDP2 keeps the ROOT's parameters unsharded after a forward (expecting a backward); after a
        # no-grad forward nothing would reshard them and the module would keep exposing unsharded
        # parameters without .grad (clipping and optimizer steps would miss the root's gradients)
        if hasattr(self.module, "reshard"):
            self.module.reshard()


def score_fn(model: nn.Module, cond: Cond, guidance: float = 1.0, null_text: torch.Tensor | None = None):
    """Bidirectional score model as ``(x_t, sigma) -> x0_hat`` (teacher = real score, critic = fake),
    with classifier-free guidance on the text when ``guidance != 1`` and ``null_text`` is given."""
    def fn(x_t, sigma):
        pf = cond.per_frame
        v = model(x_t, sigma, cond.global_["text"], pf["actions"], pf["poses"], "bidirectional")
        if guidance != 1.0 and null_text is not None:
            vu = model(x_t, sigma, null_text, pf["actions"], pf["poses"], "bidirectional")
            v = cfg_combine(v, vu, guidance)
        return x0_from_velocity(x_t, sigma, v)
    return fn
