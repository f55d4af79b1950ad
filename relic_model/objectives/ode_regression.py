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

Random prefix (beyond the paper; ``student_init.random_prefix``): with a fixed split the noisy
blocks are always the last K, so the student never gets a loss on the first blocks after the
first image -- yet at inference block 1 is generated from frame 0 alone. Measured on the smoke
suite's first frames (reports/diagnosis_still_shot.md): the teacher's weights streamed with the
student sampler keep frame 0 (first frame 20.2 dB vs frame 0), 200 steps of fixed-split ODE
regression drop it to 17.3 dB with outputs collapsing to a generic image. ``hybrid_split``
draws the number of clean blocks uniformly in [0, B - K] instead, so every block position,
including the one right after frame 0, is trained (frames after the noisy blocks are dropped).
Same teacher, same 200 steps with the random prefix: first frame 20.3 dB, outputs follow their
first frame again (two first frames 9.6 dB apart give outputs 10.6 dB apart; 14.1 with the fixed
split).
"""
from __future__ import annotations

import torch

from relic_model.objectives.flow_matching import masked_mse


def ode_regression_loss(x0_pred: torch.Tensor, x0_ode: torch.Tensor,
                        frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE between the student's one-step clean estimate and the teacher ODE end point."""
    return masked_mse(x0_pred, x0_ode, frame_mask)


def hybrid_split(num_blocks: int, num_noisy_blocks: int, random_prefix: bool,
                 generator: torch.Generator | None = None) -> int:
    """Number of clean blocks before the noisy ones: ``num_blocks - num_noisy_blocks`` (the paper's
    fixed split) or, with ``random_prefix``, uniform in [0, num_blocks - num_noisy_blocks]."""
    if not 1 <= num_noisy_blocks <= num_blocks:
        raise ValueError(f"num_noisy_blocks must be in [1, {num_blocks}], got {num_noisy_blocks}")
    top = num_blocks - num_noisy_blocks
    if not random_prefix:
        return top
    return int(torch.randint(0, top + 1, (1,), generator=generator))


def hybrid_forcing_levels(batch: int, num_blocks: int, block_frames: int, num_noisy_blocks: int,
                          num_student_steps: int, generator: torch.Generator | None = None,
                          first_frame: bool = True, clean_blocks: int | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw per-frame student-timestep indices for hybrid forcing.

    Returns ``(step_index (B, F) long, clean_mask (B, F) bool, loss_mask (B, F) bool)`` with
    ``F = first_frame + num_blocks * block_frames``. Frame 0 (first-image latent, if present) and
    the first ``num_blocks - num_noisy_blocks`` blocks are clean (``step_index = -1``); each of the
    last ``num_noisy_blocks`` blocks gets one student step index in [0, num_student_steps) shared by
    its frames (block-wise diffusion forcing). ``loss_mask`` marks the noisy frames.
    ``clean_blocks`` (default ``num_blocks - num_noisy_blocks``, see :func:`hybrid_split`) puts the
    noisy blocks right after that many clean blocks; the result then has
    ``F = first_frame + (clean_blocks + num_noisy_blocks) * block_frames`` frames.
    """
    if not 1 <= num_noisy_blocks <= num_blocks:
        raise ValueError(f"num_noisy_blocks must be in [1, {num_blocks}], got {num_noisy_blocks}")
    first_noisy = num_blocks - num_noisy_blocks if clean_blocks is None else int(clean_blocks)
    if not 0 <= first_noisy <= num_blocks - num_noisy_blocks:
        raise ValueError(f"clean_blocks must be in [0, {num_blocks - num_noisy_blocks}], got {clean_blocks}")
    off = 1 if first_frame else 0
    F = off + (first_noisy + num_noisy_blocks) * block_frames
    idx = torch.full((batch, F), -1, dtype=torch.long)
    draws = torch.randint(0, num_student_steps, (batch, num_noisy_blocks), generator=generator)
    for j in range(num_noisy_blocks):
        a = off + (first_noisy + j) * block_frames
        idx[:, a:a + block_frames] = draws[:, j:j + 1]
    loss_mask = idx >= 0
    return idx, ~loss_mask, loss_mask
