"""3-axis rotary position embedding over (frame, row, column) token positions.

Head dim ``hd`` is split into ``hd // 2`` rotation pairs: ``ph = pw = (hd // 2) // 3`` pairs for the
row and column axes, the remaining ``pt`` pairs for the frame axis. Pair ``j`` of an axis rotates by
``pos * theta ** (-j / n_axis_pairs)`` radians. Positions are floats, so spatially pooled (compressed)
memory tokens use the mean position of the cells they pool, and the frame axis can be rescaled
(``frame_scale`` < 1 interpolates positions to extend the frame range: the horizon curriculum).

Layout is "half split": the first ``hd/2`` channels are the real parts, the last ``hd/2`` the
imaginary parts of the pairs. Rotation by the negated angle (``inverse=True``) undoes it exactly.
"""
from __future__ import annotations

import torch


class Rope3D:
    """Angle computer for 3-axis RoPE (no parameters; buffers are recomputed per device/dtype)."""

    def __init__(self, head_dim: int, theta: float = 10000.0, frame_scale: float = 1.0):
        if head_dim % 2 or head_dim < 6:
            raise ValueError(f"RoPE head_dim must be even and >= 6, got {head_dim}")
        pairs = head_dim // 2
        self.ph = self.pw = pairs // 3
        self.pt = pairs - self.ph - self.pw
        self.theta = float(theta)
        self.frame_scale = float(frame_scale)
        self.head_dim = head_dim

    def _inv(self, n: int) -> torch.Tensor:
        return self.theta ** (-torch.arange(n, dtype=torch.float64) / n)

    def angles(self, pos: torch.Tensor) -> torch.Tensor:
        """pos (N, 3) float (frame, row, col) -> angles (N, hd/2) float32 radians."""
        pos = pos.to(torch.float64)
        t = (pos[:, 0:1] * self.frame_scale) * self._inv(self.pt).to(pos.device)
        h = pos[:, 1:2] * self._inv(self.ph).to(pos.device)
        w = pos[:, 2:3] * self._inv(self.pw).to(pos.device)
        return torch.cat([t, h, w], dim=1).to(torch.float32)

    def cos_sin(self, pos: torch.Tensor, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.angles(pos)
        return a.cos().to(dtype), a.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Rotate ``x`` (..., N, hd) by angles with cos/sin (N, hd/2); ``inverse`` rotates back."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    if inverse:
        sin = -sin
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def grid_positions(frames: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """Token positions (len(frames) * gh * gw, 3) float32 for latent frames ``frames`` (1-D tensor
    of absolute frame indices) on a gh x gw token grid, frame-major then row-major."""
    f = frames.to(torch.float32).view(-1, 1, 1).expand(-1, gh, gw)
    r = torch.arange(gh, dtype=torch.float32, device=frames.device).view(1, gh, 1).expand(len(frames), gh, gw)
    c = torch.arange(gw, dtype=torch.float32, device=frames.device).view(1, 1, gw).expand(len(frames), gh, gw)
    return torch.stack([f, r, c], dim=-1).reshape(-1, 3)


__all__ = ["Rope3D", "apply_rope", "grid_positions"]
