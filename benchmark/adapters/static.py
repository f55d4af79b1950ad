"""``static``: repeats the first frame forever (no motion, perfect "memory" of frame 0 only).

Lower bound for action following (its recovered trajectory does not move, so RPE equals the
commanded motion) and a reference for drift (its image statistics never change).
"""
from __future__ import annotations

import numpy as np

from benchmark.world_model import WorldModel, as_actions


class StaticModel(WorldModel):
    name = "static"
    chunk_size = 4

    def __init__(self) -> None:
        self._first: np.ndarray | None = None

    def reset(self, first_frame: np.ndarray, prompt: str, K: np.ndarray) -> None:
        self._first = np.asarray(first_frame, dtype=np.uint8).copy()

    def step(self, actions: np.ndarray, gamma: float) -> np.ndarray:
        if self._first is None:
            raise RuntimeError(f"{self.name}: step() before reset()")
        k = as_actions(actions).shape[0]
        return np.repeat(self._first[None], k, axis=0)
