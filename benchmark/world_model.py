"""The one interface every world model is benchmarked through.

A world model is driven like an interactive game: it is reset with the first frame, a static text
prompt and the camera intrinsics, then stepped with chunks of actions; each step returns the frames
for those steps. The harness (:mod:`benchmark.harness`) times every ``step`` call.

Conventions (shared with :class:`benchmark.tasks.task.Task`):

- ``first_frame``: (H, W, 3) uint8 sRGB, frame 0 of the task (given, never generated).
- ``prompt``: static scene description (never camera motion).
- ``K``: (3, 3) float64 pinhole intrinsics in pixels for the (W, H) of ``first_frame``.
- ``actions``: (k, 13) float32, RELIC's 13 action channels in :mod:`datagen.actions` order;
  row j is the action that moves the camera from the current frame to the next one.
- ``gamma``: the speed coefficient (metres per frame for a unit translation label), see
  :mod:`datagen.actions`.
- ``step`` returns (k, H, W, 3) uint8: the k frames that follow, in order.

Reference baselines that are allowed to look at ground truth (``oracle``, ``noisy-oracle``,
``reproject``'s first-frame depth) receive the task through :meth:`WorldModel.bind_task`, which
the harness calls before :meth:`reset`. A real world model ignores it (the default does nothing).
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from benchmark.tasks.task import Task


class WorldModel(abc.ABC):
    """Abstract interactive world model. Subclasses set ``name`` and implement reset/step."""

    #: model name as it appears in results tables (e.g. "oracle", "noisy-oracle:blur=2").
    name: str = "world-model"
    #: preferred number of actions per ``step`` call (the harness sends chunks of this size;
    #: the last chunk of a task may be shorter).
    chunk_size: int = 4
    #: True for reference baselines that read ground truth (marked in the leaderboard).
    privileged: bool = False

    def bind_task(self, task: "Task") -> None:
        """Give privileged reference baselines access to the task's ground truth (default: no-op)."""

    @abc.abstractmethod
    def reset(self, first_frame: np.ndarray, prompt: str, K: np.ndarray) -> None:
        """Start a new episode from ``first_frame`` (H, W, 3) uint8 with ``prompt`` and ``K``."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray, gamma: float) -> np.ndarray:
        """Advance by ``len(actions)`` steps; return (k, H, W, 3) uint8 frames."""

    def out_of_action_space(self, task: "Task") -> str | None:
        """The reason ``task`` lies outside this model's action space (e.g. it commands channels the
        model has no control for), or None (default: every task is in). The harness does not roll a
        declared task out and reports it as n/a with the reason, never as missing."""
        return None

    def close(self) -> None:
        """Release resources (optional)."""

    def describe(self) -> dict:
        """Short metadata for reports (override to add checkpoint, sizes, ...)."""
        return {"name": self.name, "chunk_size": int(self.chunk_size), "privileged": bool(self.privileged)}


def check_frames(frames: np.ndarray, k: int, height: int, width: int, who: str) -> np.ndarray:
    """Validate a ``step`` result: (k, H, W, 3) uint8. Raises RuntimeError naming the model."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise RuntimeError(f"model {who}: step() returned dtype {frames.dtype}, expected uint8")
    if frames.shape != (k, height, width, 3):
        raise RuntimeError(f"model {who}: step() returned shape {frames.shape}, expected {(k, height, width, 3)}")
    return frames


def as_actions(actions: np.ndarray) -> np.ndarray:
    """(k, 13) float32 copy of ``actions`` (raises ValueError on a wrong shape)."""
    a = np.asarray(actions, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] != 13:
        raise ValueError(f"actions must have shape (k, 13), got {a.shape}")
    return a


__all__ = ["WorldModel", "check_frames", "as_actions"]
