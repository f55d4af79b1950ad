"""One benchmark task: everything a world model gets, and the ground truth it is scored against.

Shared by the suite builder (benchmark.tasks.suite), the model harness and the metrics. Frame index
conventions: frame 0 is the first (given) frame; ``actions[i]`` is the action taken after frame i
(moving from frame i to i+1), in datagen.actions' 13-channel order; the model must return
frames 1..N-1 (the harness prepends frame 0 for scoring).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pandas as pd

from datagen.corpus.format import REVISIT_COLUMNS  # noqa: F401 - the columns of Task.revisits


@dataclass
class Task:
    """A task. Poses are c2w 4x4 in our convention (metres, OpenCV camera axes).

    task_id       unique id, also the file stem an external model's video must use.
    family        e.g. "single_action", "mixed_action", "revisit_look_away", "long_horizon".
    scene_id      held-out scene (never in a training split).
    prompt        static text prompt (describes scene content, never camera motion).
    K             (3,3) intrinsics; width, height in pixels; fps frames per second.
    actions       (N,13) float32 RELIC action labels; gamma the speed coefficient (metres/frame).
    gt_poses      (N,4,4) float64 ground-truth camera-to-world poses.
    revisits      DataFrame with REVISIT_COLUMNS: `later` revisits `earlier` (frame indices).
    gt_frames / gt_depth are loaded lazily through the loader callables (uint8 (N,H,W,3) and
    float32 (N,H,W) metres, inf = sky).
    """

    task_id: str
    family: str
    scene_id: str
    prompt: str
    K: np.ndarray
    width: int
    height: int
    fps: float
    actions: np.ndarray
    gamma: float
    gt_poses: np.ndarray
    revisits: pd.DataFrame
    _frames_loader: Optional[Callable[[], np.ndarray]] = field(default=None, repr=False)
    _depth_loader: Optional[Callable[[], np.ndarray]] = field(default=None, repr=False)
    meta: dict = field(default_factory=dict)
    _frames: Optional[np.ndarray] = field(default=None, repr=False)
    _depth: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def num_frames(self) -> int:
        return int(self.gt_poses.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / float(self.fps)

    def gt_frames(self) -> np.ndarray:
        if self._frames is None:
            if self._frames_loader is None:
                raise RuntimeError(f"task {self.task_id}: no ground-truth frames attached")
            self._frames = self._frames_loader()
        return self._frames

    def gt_depth(self) -> np.ndarray:
        if self._depth is None:
            if self._depth_loader is None:
                raise RuntimeError(f"task {self.task_id}: no ground-truth depth attached")
            self._depth = self._depth_loader()
        return self._depth

    def release(self) -> None:
        """Drop the cached ground-truth frames and depth (reloaded on the next access); only when
        they can be reloaded, so tasks built in memory keep theirs."""
        if self._frames_loader is not None:
            self._frames = None
        if self._depth_loader is not None:
            self._depth = None

    def first_frame(self) -> np.ndarray:
        return self.gt_frames()[0]
