"""Rectified-flow / flow-matching objective.

Definitions (latents ``x0`` of shape (B, F, C, h, w), noise ``eps`` of the same shape,
per-frame noise level ``sigma`` of shape (B, F) in [0, 1]):

- forward process  ``x_t = (1 - sigma) * x0 + sigma * eps``
- target velocity  ``v* = eps - x0``
- loss             ``mean over (B, frames with loss_mask, C, h, w) of (v_pred - v*)^2``

``sample_sigma`` draws training noise levels from a logit-normal distribution then applies the
SD3/Wan timestep shift ``s * t / (1 + (s - 1) t)`` (shift > 1 moves mass to high noise).
"""
from __future__ import annotations

import torch


def add_noise(x0: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``x_t = (1 - sigma) x0 + sigma eps``; sigma (B, F) broadcast over (C, h, w)."""
    s = sigma.to(x0.dtype).reshape(*sigma.shape, *([1] * (x0.dim() - sigma.dim())))
    return (1.0 - s) * x0 + s * eps


def noised_context(x0: torch.Tensor, context_sigma: float, generator: torch.Generator | None,
                   first_index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Context latents (B, F, C, h, w) as they enter the KV cache under ``sampling.context_sigma``:
    frames with absolute index >= 1 (``first_index`` is the absolute index of ``x0[:, 0]``) become
    ``(1 - c) x0 + c eps`` at sigma ``c``; latent frame 0, the given first image, stays clean at
    sigma 0. Returns ``(x, sigma (B, F))``; ``c == 0`` returns ``x0`` unchanged with sigma 0 and
    draws nothing (``generator`` may then be None). ``eps`` is drawn from ``generator`` on its device."""
    B, F = x0.shape[:2]
    sig = torch.zeros((B, F), dtype=x0.dtype, device=x0.device)
    if context_sigma <= 0:
        return x0, sig
    eps = torch.randn(x0.shape, generator=generator, dtype=torch.float32, device=generator.device).to(x0)
    idx = torch.arange(first_index, first_index + F, device=x0.device)
    sig[:, idx >= 1] = float(context_sigma)
    return add_noise(x0, eps, sig), sig


def velocity_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``v* = eps - x0``."""
    return eps - x0


def x0_from_velocity(x_t: torch.Tensor, sigma: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Clean estimate ``x0_hat = x_t - sigma * v``."""
    s = sigma.to(x_t.dtype).reshape(*sigma.shape, *([1] * (x_t.dim() - sigma.dim())))
    return x_t - s * v


def shift_sigma(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Timestep shift ``s t / (1 + (s - 1) t)`` (identity for shift == 1)."""
    return shift * t / (1.0 + (shift - 1.0) * t)


def sample_sigma(shape, generator: torch.Generator | None = None, shift: float = 1.0,
                 logit_mean: float = 0.0, logit_std: float = 1.0, dtype=torch.float32,
                 device=None) -> torch.Tensor:
    """Logit-normal noise levels in (0, 1), then shifted. ``shape`` e.g. (B,) or (B, F)."""
    z = torch.randn(shape, generator=generator, dtype=torch.float64)
    t = torch.sigmoid(z * logit_std + logit_mean)
    return shift_sigma(t, shift).to(dtype=dtype, device=device)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over the frames where ``frame_mask`` (B, F) is true (all if None)."""
    err = (pred - target).pow(2)
    if frame_mask is None:
        return err.mean()
    m = frame_mask.to(err.dtype).reshape(*frame_mask.shape, *([1] * (err.dim() - frame_mask.dim())))
    denom = m.sum() * (err[0, 0].numel())
    return (err * m).sum() / denom.clamp_min(1.0)


def flow_matching_loss(v_pred: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor,
                       frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Flow-matching loss ``mean (v_pred - (eps - x0))^2`` over masked frames."""
    return masked_mse(v_pred, velocity_target(x0, eps), frame_mask)


def first_frame_clean_sigma(sigma_per_sample: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B,) -> (B, F): every frame at the sample's sigma except latent frame 0 at sigma 0."""
    sig = sigma_per_sample.reshape(-1, 1).expand(-1, num_frames).clone()
    sig[:, 0] = 0.0
    return sig
