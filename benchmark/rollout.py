"""Drive a world model through a task, chunk by chunk, and time it.

The model is bound to the task (privileged baselines only), reset with frame 0, the prompt and K,
then stepped with the task's actions, ``model.chunk_size`` actions per call (the last chunk
shorter). Every ``step`` call is timed with ``time.perf_counter``; :meth:`Rollout.speed_metrics`
turns the timings into the harness's speed metrics:

``fps``                   generated frames / total wall seconds spent inside ``step`` (reset excluded)
``chunk_latency_ms``      median (p50) wall milliseconds of one ``step`` call
``chunk_latency_p95_ms``  95th percentile of the same (numpy 'linear' percentile)

Used by the harness in its own process (:mod:`benchmark.harness`) and by the Ray rollout actors
(:mod:`benchmark.ray_engine`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from benchmark.tasks.task import Task
from benchmark.world_model import WorldModel, check_frames


@dataclass
class Rollout:
    """Frames of one model on one task (frame 0 included) and its step timings (seconds)."""

    frames: np.ndarray
    step_seconds: list[float] = field(default_factory=list)
    chunk_sizes: list[int] = field(default_factory=list)
    reset_seconds: float = 0.0

    def speed_metrics(self) -> dict[str, float]:
        total = float(np.sum(self.step_seconds))
        lat = np.asarray(self.step_seconds) * 1000.0
        return {"fps": float(np.sum(self.chunk_sizes)) / total if total > 0 else float("nan"),
                "chunk_latency_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                "chunk_latency_p95_ms": float(np.percentile(lat, 95)) if lat.size else float("nan")}


def rollout(model: WorldModel, task: Task) -> Rollout:
    """Drive ``model`` through ``task`` chunk by chunk; returns all N frames (frame 0 prepended)."""
    n = task.num_frames
    actions = np.asarray(task.actions, dtype=np.float32)[: n - 1]
    first = task.first_frame()
    model.bind_task(task)
    t0 = time.perf_counter()
    model.reset(first, task.prompt, np.asarray(task.K, dtype=np.float64))
    reset_s = time.perf_counter() - t0
    k = max(1, int(getattr(model, "chunk_size", 4) or 4))
    out = [first[None]]
    r = Rollout(frames=np.zeros(0), reset_seconds=reset_s)
    for s in range(0, n - 1, k):
        chunk = actions[s:s + k]
        t0 = time.perf_counter()
        frames = model.step(chunk, float(task.gamma))
        r.step_seconds.append(time.perf_counter() - t0)
        r.chunk_sizes.append(len(chunk))
        out.append(check_frames(frames, len(chunk), task.height, task.width, model.name))
    r.frames = np.concatenate(out, axis=0)
    return r
