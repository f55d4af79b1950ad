"""``RelicWorldModel``: the RELIC streaming generator behind :class:`benchmark.world_model.WorldModel`.

``RelicWorldModel(checkpoint=None, memory=True, device="cpu")`` loads a checkpoint directory
(:mod:`relic_model.inference.checkpoint`; None = the bundled ``relic_model/checkpoints/relic_tiny``)
and streams with the full two-branch memory (``memory=True``, name "relic") or with the cache
limited to the rolling window (``memory=False``, name "relic-nomem", the ablation).
``chunk_size`` = video frames per generation block (4 x frames_per_block).
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.world_model import WorldModel, as_actions
from relic_model.inference.checkpoint import load_checkpoint
from relic_model.inference.streaming import StreamingGenerator


class RelicWorldModel(WorldModel):
    def __init__(self, checkpoint=None, memory: bool = True, device: str = "cpu", seed: int | None = None,
                 num_threads: int | None = None):
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.cfg, self.dit, self.ae, self.text = load_checkpoint(checkpoint, device)
        self.gen = StreamingGenerator(self.dit, self.ae, self.text, self.cfg, memory=memory, device=device)
        self.name = "relic" if memory else "relic-nomem"
        self.chunk_size = self.gen.frames_per_block
        self.memory = bool(memory)
        self.seed = seed

    def reset(self, first_frame: np.ndarray, prompt: str, K: np.ndarray) -> None:
        """Tasks at another resolution than the checkpoint's are served by resizing: the first frame
        (and K) down/up to the model's size, generated frames back to the task's size (area /
        bilinear interpolation). The model never sees more detail than it was trained at."""
        H, W = first_frame.shape[:2]
        mw, mh = int(self.cfg.data.width), int(self.cfg.data.height)
        self._out_size = None if (W, H) == (mw, mh) else (W, H)
        if self._out_size is not None:
            import cv2

            first_frame = cv2.resize(first_frame, (mw, mh), interpolation=cv2.INTER_AREA)
            K = np.diag([mw / W, mh / H, 1.0]) @ np.asarray(K, dtype=np.float64)
        self.gen.reset(first_frame, prompt, K, seed=self.seed)

    def step(self, actions: np.ndarray, gamma: float) -> np.ndarray:
        frames = self.gen.step(as_actions(actions), gamma)
        if getattr(self, "_out_size", None) is None:
            return frames
        import cv2

        return np.stack([cv2.resize(f, self._out_size, interpolation=cv2.INTER_LINEAR) for f in frames])

    def describe(self) -> dict:
        d = super().describe()
        d.update({"checkpoint": self.checkpoint or "bundled", "memory": self.memory, "config": self.cfg.name,
                  "resolution": [self.cfg.data.width, self.cfg.data.height],
                  "window": self.cfg.memory.window, "schedule": list(self.cfg.memory.schedule)})
        return d


__all__ = ["RelicWorldModel"]
