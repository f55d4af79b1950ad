"""Distribution Matching Distillation (DMD, reverse-KL) as used by Self-Forcing / RELIC.

Given a generated clean video ``x`` (B, F, C, h, w) from the student, both score models see the
same noised copy ``x_t = (1 - sigma) x + sigma eps`` (first frame clean) and return clean
estimates: ``x0_real`` from the frozen teacher ("real" score, optionally with classifier-free
guidance), ``x0_fake`` from the trained critic ("fake" score). In x0 space the score difference
is ``s_real - s_fake  ∝  x0_real - x0_fake``. The DMD generator gradient (DMD2 normalisation) is

    g = (x0_fake - x0_real) / mean_{C,h,w,frames}(|x - x0_real|)     (per sample, clamped >= 1e-6)

and the generator loss is the surrogate ``L = 0.5 * mean((x - sg(x - g))^2)`` over loss frames,
whose gradient w.r.t. ``x`` is ``g / N`` on loss frames (N = number of loss elements). That
gradient (``dmd_output_grad``) is what replayed back-propagation caches per block and feeds to
``torch.autograd.backward`` block by block.

The critic is trained by ordinary flow matching on detached student samples
(``relic_model.objectives.flow_matching.flow_matching_loss``).
"""
from __future__ import annotations

import torch


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Classifier-free guidance ``uncond + scale * (cond - uncond)`` (``cond`` when scale == 1)."""
    if uncond is None or scale == 1.0:
        return cond
    return uncond + scale * (cond - uncond)


def dmd_gradient(x: torch.Tensor, x0_real: torch.Tensor, x0_fake: torch.Tensor,
                 frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised DMD gradient ``g`` (same shape as x, zero outside ``frame_mask`` (B, F))."""
    with torch.no_grad():
        diff = (x - x0_real).abs()
        if frame_mask is not None:
            m = frame_mask.to(x.dtype).reshape(*frame_mask.shape, *([1] * (x.dim() - 2)))
            norm = (diff * m).flatten(1).sum(1) / (m.flatten(1).sum(1) * x[0, 0].numel()).clamp_min(1)
        else:
            norm = diff.flatten(1).mean(1)
        g = (x0_fake - x0_real) / norm.clamp_min(1e-6).reshape(-1, *([1] * (x.dim() - 1)))
        if frame_mask is not None:
            g = g * m
        return torch.nan_to_num(g)


def dmd_output_grad(g: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """d L / d x for ``L = dmd_loss(x, g)``: ``g / N`` (N = number of loss elements)."""
    if frame_mask is None:
        n = g.numel()
    else:
        n = int(frame_mask.sum().item()) * g[0, 0].numel()
    return g / max(n, 1)


def dmd_loss(x: torch.Tensor, g: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Surrogate ``0.5 * mean((x - sg(x - g))^2)`` over loss frames; its value is 0.5 mean(g^2)."""
    target = (x - g).detach()
    err = 0.5 * (x - target).pow(2)
    if frame_mask is None:
        return err.mean()
    m = frame_mask.to(x.dtype).reshape(*frame_mask.shape, *([1] * (x.dim() - 2)))
    return (err * m).sum() / (m.sum() * x[0, 0].numel()).clamp_min(1)
