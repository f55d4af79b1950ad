"""The student's few-step flow sampler for one generation block (shared by inference and the
Self-Forcing rollout).

With descending noise levels ``sigmas = [s_0, ..., s_{n-1}]`` (config ``sampling.sigmas``, default
[1, 0.75, 0.5, 0.25]) and initial noise ``eps_0``::

    x = (1 - s_0) * 0 + s_0 * eps_0          (= eps_0 when s_0 = 1)
    for i in 0..n-1:
        v   = model(x, sigma = s_i)           # velocity eps - x0
        x0  = x - s_i * v
        if i < n-1: x = (1 - s_{i+1}) * x0 + s_{i+1} * eps_{i+1}   # fresh noise from generator
    return x0

Noise is drawn from the given ``torch.Generator`` in this order: ``eps_0`` by the caller (or here
when ``noise`` is None), then ``eps_1 .. eps_{n-1}``; runs are reproducible from the seed.
"""
from __future__ import annotations

import torch


def denoise_block(model, noise: torch.Tensor, sigmas, generator: torch.Generator | None = None,
                  return_trajectory: bool = False, **model_kwargs):
    """Denoise one block. ``noise`` (B, Fb, C, h, w) = eps_0; ``model_kwargs`` go to
    ``model.forward`` (text, actions, poses, attn_mode, cache, frame_offset; ``update_cache`` is
    forced False). Returns x0 (and the list of (x_i, sigma_i, v_i) when ``return_trajectory``)."""
    model_kwargs = dict(model_kwargs)
    model_kwargs["update_cache"] = False
    B, Fb = noise.shape[:2]
    x = sigmas[0] * noise
    traj = []
    x0 = x
    for i, s in enumerate(sigmas):
        sig = torch.full((B, Fb), float(s), dtype=noise.dtype, device=noise.device)
        v = model(x, sig, **model_kwargs)
        x0 = x - float(s) * v
        if return_trajectory:
            traj.append((x, float(s), v))
        if i + 1 < len(sigmas):
            eps = torch.randn(noise.shape, generator=generator, dtype=noise.dtype, device=noise.device)
            x = (1.0 - sigmas[i + 1]) * x0 + sigmas[i + 1] * eps
    return (x0, traj) if return_trajectory else x0


__all__ = ["denoise_block"]
