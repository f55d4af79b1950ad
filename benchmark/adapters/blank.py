"""``blank``: frame 0, then a video that shows nothing: every later frame is frame 0's mean colour.

A metric-validity reference, not a world model: it keeps no content, follows no action and
remembers nothing, yet it is perfectly self-consistent after frame 0 and its flat frames sit near
the ground truth's average colour (which PSNR rewards). The memory headline must not credit it
(``benchmark.report_validity``: its ``revisit_consistency_gain`` <= static's + 0.5 dB); under
protocol 6 it scored 13.2 dB on the smoke suite, above the ground truth's 11.3, which is what
made a bundled-model candidate that collapsed to grey look like a memory gain (relic_model/README.md).
"""
from __future__ import annotations

import numpy as np

from benchmark.adapters.static import StaticModel


class BlankModel(StaticModel):
    """A static video of frame 0's mean colour (frame 0 itself comes from the rollout)."""
    name = "blank"

    def reset(self, first_frame: np.ndarray, prompt: str, K: np.ndarray) -> None:
        f = np.asarray(first_frame, dtype=np.uint8)
        mean = np.round(f.reshape(-1, f.shape[-1]).mean(axis=0)).astype(np.uint8)
        self._first = np.broadcast_to(mean, f.shape).copy()
