"""Seeded, reproducible camera-trajectory generators (poses only, no rendering).

    from datagen.trajectories import GENERATORS, generate
    traj = generate("revisit_loop", backend, seed=3, duration_s=20.0, fps=16)
    traj.poses          # (N, 4, 4) camera-to-world, ours; N = round(duration_s * fps)
    traj.segments       # what was commanded when
    traj.revisit_plan   # [[later, earlier], ...]

Every generator drives a :class:`datagen.controller.CameraController` against the given backend
(so collisions are real). Same backend scene + same name + same seed + same params = same poses.

generate() parameters
    name        one of ``GENERATORS``
    backend     any CaptureBackend (embedded or UnrealCV); its resolution and FOV are only used to
                verify revisit pairs (frustum overlap)
    seed        int; the only source of randomness
    duration_s  clip length in seconds (default 20); fps frames per second (default 16)
    start       "random" (default: a random free point at eye height when the backend exposes a
                scene with ``sample_free_point``, else the spawn position; random yaw, level),
                "spawn" (the scene's spawn pose, as is) or a 4x4 c2w
    controller  dict of CameraController keyword arguments (move_speed, yaw_rate, accel_tau, ...)
    **params    generator-specific keyword arguments (see each generator's docstring)
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from datagen.controller import CameraController
from datagen.conventions import rotator_to_rotation
from datagen.trajectories.base import Driver, Trajectory
from datagen.trajectories.explore import explore
from datagen.trajectories.revisit import (
    revisit_look_away,
    revisit_loop,
    revisit_out_and_back,
    revisit_pan360,
    revisit_return_to_start,
)
from datagen.trajectories.scripts import script_mixed, script_single

GENERATORS: dict[str, Callable] = {
    "explore": explore,
    "script_single": script_single,
    "script_mixed": script_mixed,
    "revisit_out_and_back": revisit_out_and_back,
    "revisit_loop": revisit_loop,
    "revisit_pan360": revisit_pan360,
    "revisit_look_away": revisit_look_away,
    "revisit_return_to_start": revisit_return_to_start,
}
REVISIT_GENERATORS = tuple(k for k in GENERATORS if k.startswith("revisit_"))


def _scene_of(backend):
    """The Scene behind a backend, if it exposes one (EmbeddedBackend.scene; the UnrealCV client
    given a scene file), else None."""
    scene = getattr(backend, "scene", None)
    if scene is None and callable(getattr(backend, "_scene_obj", None)):
        try:
            scene = backend._scene_obj()
        except Exception:
            scene = None
    return scene if scene is not None and hasattr(scene, "sample_free_point") else None


def start_pose(backend, rng: np.random.Generator, start="random") -> np.ndarray:
    """The first pose of a trajectory (see the module docstring for ``start``)."""
    if isinstance(start, str):
        if start not in ("random", "spawn"):
            raise ValueError(f"start must be 'random', 'spawn' or a 4x4 pose, got {start!r}")
        info = backend.scene_info()
        spawn = np.asarray(info["spawn_c2w"], np.float64)
        if start == "spawn":
            return spawn
        scene = _scene_of(backend)
        pos = spawn[:3, 3].copy()
        if scene is not None:
            try:
                pos = scene.sample_free_point(rng)
            except Exception:  # no geometry here (e.g. an Unreal level): the spawn position
                pos = spawn[:3, 3].copy()
        c = np.eye(4)
        c[:3, :3] = rotator_to_rotation(0.0, float(rng.uniform(-180, 180)), 0.0)
        c[:3, 3] = pos
        return c
    c = np.asarray(start, np.float64)
    if c.shape != (4, 4):
        raise ValueError(f"start pose must be 4x4, got {c.shape}")
    return c


def generate(name: str, backend, seed: int, duration_s: float = 20.0, fps: float = 16.0, start="random",
             controller: dict | None = None, **params) -> Trajectory:
    """Run generator ``name`` for ``round(duration_s * fps)`` frames; see the module docstring."""
    if name not in GENERATORS:
        raise ValueError(f"unknown trajectory generator {name!r}; choose one of {', '.join(GENERATORS)}")
    if not (duration_s > 0 and fps > 0 and math.isfinite(duration_s) and math.isfinite(fps)):
        raise ValueError(f"duration_s and fps must be positive, got {duration_s}, {fps}")
    n = max(2, int(round(duration_s * fps)))
    rng = np.random.default_rng(int(seed))
    c0 = start_pose(backend, rng, start)
    ctrl = CameraController(backend, fps=fps, start_c2w=c0, **(controller or {}))
    drv = Driver(ctrl, n, rng)
    try:
        plan = GENERATORS[name](drv, rng, **params)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise ValueError(f"bad parameter for generator {name!r}: {e}") from e
        raise
    drv.pad()
    poses = drv.result()
    assert len(poses) == n, (len(poses), n)
    record = {"duration_s": float(duration_s), "start": start if isinstance(start, str) else "pose",
              "controller": dict(controller or {}), **params}
    return Trajectory(poses=poses, fps=float(fps), generator=name, params=record, seed=int(seed),
                      segments=drv.segments, revisit_plan=plan or [], log=ctrl.log())


__all__ = ["GENERATORS", "REVISIT_GENERATORS", "Trajectory", "generate", "start_pose", "Driver"]
