"""The paper's action scripts: single actions one after another ("script_single") and combined
actions ("script_mixed").

script_single
    Segments of ONE held key each (any of the 12 motion channels), 1.5-3 s long (``seg_s``) at
    speed multiplier ``speed``, each followed by the controller's deceleration to rest. Chosen at
    random among the FEASIBLE ones: a translation needs the free distance along its direction
    (probed with ``move_to``) and is shortened (down to 0.75 s) to fit; tilts keep the pitch
    within +-``max_pitch`` and rolls the roll within +-``max_roll``. So that each segment is a
    pure single action in the labels too, a pan or tilt is preceded by a roll back to level, and a
    pan by a tilt back to level, when needed (themselves single-action segments).
script_mixed
    Segments of 2-3 keys held together (``MIXES``: arcs W+pan, diagonals W+A/D, orbits A/D +
    opposite pan, diagonal looks pan+tilt, crane moves W+lift, ...), 1.5-3 s each, with the same
    feasibility checks (the translation direction of the mix is probed), then back to level.
"""
from __future__ import annotations

import numpy as np

from datagen.trajectories.base import Driver

SINGLE = ("dolly_in", "dolly_out", "truck_left", "truck_right", "pedestal_up", "pedestal_down",
          "tilt_up", "tilt_down", "pan_left", "pan_right", "roll_cw", "roll_ccw")

MIXES = (
    ("dolly_in", "pan_left"), ("dolly_in", "pan_right"),
    ("dolly_in", "truck_left"), ("dolly_in", "truck_right"),
    ("dolly_out", "pan_left"), ("dolly_out", "pan_right"),
    ("truck_left", "pan_right"), ("truck_right", "pan_left"),
    ("pan_left", "tilt_up"), ("pan_right", "tilt_down"), ("pan_right", "tilt_up"), ("pan_left", "tilt_down"),
    ("dolly_in", "pedestal_up"), ("dolly_in", "pedestal_down"),
    ("truck_left", "pedestal_up"), ("truck_right", "pedestal_down"),
    ("dolly_in", "truck_right", "pan_left"), ("dolly_in", "truck_left", "pan_right"),
)

# camera-frame unit direction (x right, y down, z forward) of each translation channel
_DIR = {
    "dolly_in": (0, 0, 1), "dolly_out": (0, 0, -1), "truck_left": (-1, 0, 0), "truck_right": (1, 0, 0),
    "pedestal_up": (0, -1, 0), "pedestal_down": (0, 1, 0),
}


def _translation(drv: Driver, keys, speed: float) -> np.ndarray:
    """World-frame velocity (m/s) of holding ``keys`` at ``speed`` from the current orientation."""
    c = drv.ctrl
    v = np.zeros(3)
    for k in keys:
        if k in _DIR:
            s = c.lift_speed if k.startswith("pedestal") else c.move_speed
            v += np.asarray(_DIR[k], float) * s * speed
    return c.pose[:3, :3] @ v


def _fit_frames(drv: Driver, keys, speed: float, frames: int, min_frames: int) -> int:
    """Frames (<= frames) the translation of ``keys`` can run without reaching an obstacle; 0 if
    fewer than ``min_frames``. Rotation-only keys always fit."""
    vel = _translation(drv, keys, speed)
    v = float(np.linalg.norm(vel))
    if v < 1e-9:
        return frames
    c = drv.ctrl
    need = v * frames / c.fps + 0.5  # lag and deceleration overrun margin
    free = c.free_distance(vel, need)
    if free >= need - 1e-6:
        return frames
    fit = int((free - 0.5) / v * c.fps)
    return fit if fit >= min_frames else 0


def _rotation_ok(drv: Driver, keys, speed: float, frames: int, max_pitch: float, max_roll: float) -> bool:
    c = drv.ctrl
    t = frames / c.fps
    p = c.pitch + speed * c.pitch_rate * t * (("tilt_up" in keys) - ("tilt_down" in keys))
    r = c.roll + speed * c.roll_rate * t * (("roll_cw" in keys) - ("roll_ccw" in keys))
    return abs(p) <= max_pitch and abs(r) <= max_roll


def _level(drv: Driver, keys) -> None:
    """Before a pan or tilt, bring roll (and for a pan, pitch) back to 0 so the labels are pure."""
    c = drv.ctrl
    rot = any(k.startswith(("pan", "tilt")) for k in keys)
    if rot and abs(c.roll) > 0.5:
        drv.turn_to(roll=0.0)
    if any(k.startswith("pan") for k in keys) and abs(c.pitch) > 0.5:
        drv.turn_to(pitch=0.0)


def _run_script(drv: Driver, rng, choices, seg_s, speed, max_pitch, max_roll, pause_s, label) -> list:
    c = drv.ctrl
    drv.phase = label
    drv.hold(None, int(0.5 * c.fps))
    min_frames = int(0.75 * c.fps)

    def one() -> int:
        before = drv.remaining
        order = rng.permutation(len(choices))
        for i in order:
            keys = choices[i]
            keys = (keys,) if isinstance(keys, str) else tuple(keys)
            frames = int(round(rng.uniform(*seg_s) * c.fps))
            if not _rotation_ok(drv, keys, speed, frames, max_pitch, max_roll):
                continue
            _level(drv, keys)
            frames = _fit_frames(drv, keys, speed, frames, min_frames)
            if frames == 0:
                continue
            drv.hold({k: speed for k in keys}, frames)
            drv.settle()
            if pause_s > 0:
                drv.hold(None, int(rng.uniform(0, pause_s) * c.fps))
            break
        else:  # nothing feasible: level the camera, then turn toward open space
            drv.turn_to(pitch=0.0, roll=0.0)
            yaw, _ = drv.best_heading(c.yaw + np.array([90.0, 180.0, -90.0]))
            drv.turn_to(yaw=yaw)
        return before - drv.remaining

    drv.fill(one)
    return []


def script_single(drv: Driver, rng: np.random.Generator, seg_s=(1.5, 3.0), speed: float = 1.0,
                  max_pitch: float = 40.0, max_roll: float = 30.0, pause_s: float = 0.5) -> list:
    """Single actions one after another (see the module docstring)."""
    return _run_script(drv, rng, SINGLE, seg_s, speed, max_pitch, max_roll, pause_s, "single")


def script_mixed(drv: Driver, rng: np.random.Generator, seg_s=(1.5, 3.0), speed: float = 0.8,
                 max_pitch: float = 40.0, max_roll: float = 30.0, pause_s: float = 0.5) -> list:
    """Combined actions (see the module docstring)."""
    return _run_script(drv, rng, MIXES, seg_s, speed, max_pitch, max_roll, pause_s, "mixed")
