"""Teacher probability-flow ODE sampling (Euler) and trajectory recording for ODE regression.

``velocity_fn(x_t, sigma) -> v`` is the (bidirectional) teacher with its conditioning bound;
``x_t``/``v`` are (B, F, C, h, w), ``sigma`` (B, F). Latent frame 0 is the clean first-image latent:
its sigma stays 0 and it is never updated. The ODE ``dx/dsigma = v`` is integrated from sigma = 1
(pure noise) to sigma = 0 with Euler steps ``x <- x + (s_next - s) v``, on a grid that contains
every requested record level exactly.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from relic_model.objectives.flow_matching import shift_sigma

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sigma_grid(num_steps: int, shift: float = 1.0, include: Sequence[float] = ()) -> list[float]:
    """Decreasing grid 1 -> 0 of ``num_steps`` shifted-uniform steps, merged with ``include``."""
    t = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
    pts = set(round(float(s), 9) for s in shift_sigma(t, shift))
    pts |= set(round(float(s), 9) for s in include)
    pts |= {0.0, 1.0}
    return sorted(pts, reverse=True)


def student_timesteps(num_steps: int = 4, shift: float = 1.0) -> list[float]:
    """The student's denoising levels, e.g. 4 steps, shift 1: [1.0, 0.75, 0.5, 0.25]."""
    t = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)[:-1]
    return [round(float(s), 9) for s in shift_sigma(t, shift)]


def _frame_sigma(level: float, like: torch.Tensor, first_frame: bool) -> torch.Tensor:
    s = torch.full(like.shape[:2], level, dtype=like.dtype, device=like.device)
    if first_frame:
        s[:, 0] = 0.0
    return s


@torch.no_grad()
def sample_ode(velocity_fn: VelocityFn, noise: torch.Tensor, first_latent: torch.Tensor | None,
               num_steps: int = 16, shift: float = 1.0, record: Sequence[float] = (),
               progress: bool = False) -> tuple[torch.Tensor, dict[float, torch.Tensor]]:
    """Integrate the teacher ODE from ``noise`` (B, F', C, h, w) to a clean video.

    If ``first_latent`` (B, 1, C, h, w) is given it is prepended as clean frame 0 and the result
    has F' + 1 frames. Returns ``(x0 (B, F, ...), {level: x_level})`` with the states at every
    level in ``record`` (values as given, matched to the grid within 1e-9).
    """
    first = first_latent is not None
    x = torch.cat([first_latent.to(noise.dtype), noise], 1) if first else noise.clone()
    grid = sigma_grid(num_steps, shift, record)
    wanted = {round(float(r), 9): r for r in record}
    states: dict[float, torch.Tensor] = {}
    steps = range(len(grid) - 1)
    if progress:
        from tqdm import tqdm
        steps = tqdm(steps, desc="teacher ODE", leave=False)
    for i in steps:
        s, s_next = grid[i], grid[i + 1]
        if s in wanted:
            states[wanted[s]] = x.clone()
        v = velocity_fn(x, _frame_sigma(s, x, first))
        upd = (s_next - s) * v
        if first:
            upd[:, 0] = 0.0
        x = x + upd
    return x, states
