"""ODE regression for the few-step student (paper: student initialisation).

The teacher's probability-flow ODE is integrated from pure noise (sigma = 1) to data (sigma = 0)
once per training clip (``relic_model.pipelines.teacher_sampling``); the states at the student's
K timesteps ``x_{t_k}`` are stored together with the ODE end point ``x0_ode``. The student,
given ``x_{t_k}`` at sigma ``t_k``, must predict the end point in one step:

    loss = mean over (frames with loss_mask, C, h, w) of (x0_hat_student - x0_ode)^2,
    x0_hat_student = x_{t_k} - t_k * v_student(x_{t_k}, t_k).

Hybrid forcing (paper): of the B latent blocks, the first B-K are given clean (sigma 0, they only
serve as compressed context in the KV cache) and carry no loss; the last K are uncompressed and
noised at independently drawn student timesteps (diffusion forcing). ``hybrid_forcing_levels``
draws those per-frame levels.
"""
from __future__ import annotations

import torch

from relic_model.objectives.flow_matching import masked_mse


def ode_regression_loss(x0_pred: torch.Tensor, x0_ode: torch.Tensor,
                        frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE between the student's one-step clean estimate and the teacher ODE end point."""
    return masked_mse(x0_pred, x0_ode, frame_mask)


def hybrid_forcing_levels(batch: int, num_blocks: int, block_frames: int, num_noisy_blocks: int,
                          num_student_steps: int, generator: torch.Generator | None = None,
                          first_frame: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw per-frame student-timestep indices for hybrid forcing.

    Returns ``(step_index (B, F) long, clean_mask (B, F) bool, loss_mask (B, F) bool)`` with
    ``F = first_frame + num_blocks * block_frames``. Frame 0 (first-image latent, if present) and
    the first ``num_blocks - num_noisy_blocks`` blocks are clean (``step_index = -1``); each of the
    last ``num_noisy_blocks`` blocks gets one student step index in [0, num_student_steps) shared by
    its frames (block-wise diffusion forcing). ``loss_mask`` marks the noisy frames.
    """
    if not 1 <= num_noisy_blocks <= num_blocks:
        raise ValueError(f"num_noisy_blocks must be in [1, {num_blocks}], got {num_noisy_blocks}")
    off = 1 if first_frame else 0
    F = off + num_blocks * block_frames
    idx = torch.full((batch, F), -1, dtype=torch.long)
    first_noisy = num_blocks - num_noisy_blocks
    draws = torch.randint(0, num_student_steps, (batch, num_noisy_blocks), generator=generator)
    for j in range(num_noisy_blocks):
        a = off + (first_noisy + j) * block_frames
        idx[:, a:a + block_frames] = draws[:, j:j + 1]
    loss_mask = idx >= 0
    return idx, ~loss_mask, loss_mask
