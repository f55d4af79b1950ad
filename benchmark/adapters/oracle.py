"""``oracle``: returns the ground-truth renders (upper bound and metric sanity check).

Privileged: it reads the task's ground-truth frames (rendered by the embedded renderer at the
ground-truth poses, which are exactly the poses the commanded actions integrate to). Its action
following error is therefore the pose estimator's own noise floor, and its revisit PSNR is capped
(identical images).
"""
from __future__ import annotations

import numpy as np

from benchmark.world_model import WorldModel, as_actions


class OracleModel(WorldModel):
    name = "oracle"
    chunk_size = 4
    privileged = True

    def __init__(self) -> None:
        self._task = None
        self._t = 0

    def bind_task(self, task) -> None:
        self._task = task

    def reset(self, first_frame: np.ndarray, prompt: str, K: np.ndarray) -> None:
        if self._task is None:
            raise RuntimeError("oracle: needs bind_task(task) before reset() (it reads ground truth)")
        self._t = 0

    def _gt(self, k: int) -> np.ndarray:
        gt = self._task.gt_frames()
        idx = np.arange(self._t + 1, self._t + 1 + k)
        if idx[-1] >= len(gt):
            raise RuntimeError(f"{self.name}: stepped past the end of task {self._task.task_id}")
        self._t += k
        return idx

    def step(self, actions: np.ndarray, gamma: float) -> np.ndarray:
        k = as_actions(actions).shape[0]
        return self._task.gt_frames()[self._gt(k)].copy()
