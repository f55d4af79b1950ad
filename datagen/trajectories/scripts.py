"""The paper's action scripts: single actions one after another ("script_single") and combined
actions ("script_mixed").

script_single
    Segments of ONE held key each (any of the 12 motion channels), 1.5-3 s long (``seg_s``) at
    speed multiplier ``speed``, each followed by the controller's deceleration to rest. Chosen at
    random among the FEASIBLE ones: a translation must stay collision-free along its predicted
    path (kinematic prediction, probed segment by segment with ``move_to``) and is shortened
    (down to 0.75 s) to fit; tilts and rolls are shortened the same way to keep the
    pitch within +-``max_pitch`` and the roll within +-``max_roll``. So that each segment is a
    pure single action in the labels too, a pan or tilt is preceded by a roll back to level, and a
    pan by a tilt back to level, when needed (themselves single-action segments); levelling
    leaves < 0.5 deg, so the cross-talk into other channels stays below sin(0.5 deg) < 1 %.
script_mixed
    Segments of 2-3 keys held together (``MIXES``: arcs W+pan, diagonals W+A/D, orbits A/D +
    opposite pan, diagonal looks pan+tilt, crane moves W+lift, ...), 1.5-3 s each, with the same
    feasibility checks (the predicted, possibly curved, path of the mix is probed).
"""
from __future__ import annotations

import numpy as np

from datagen.conventions import rotator_to_rotation
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


def _predict_path(drv: Driver, keys, speed: float, frames: int, every: int = 4) -> list[tuple[int, np.ndarray]]:
    """(frame, position) samples of holding ``keys`` from the current state (kinematic, no lag),
    plus a final point 0.5 m further along the last direction (deceleration overrun margin)."""
    c = drv.ctrl
    k = lambda name: speed if name in keys else 0.0  # noqa: E731
    v_cam = np.array([c.move_speed * (k("truck_right") - k("truck_left")),
                      c.lift_speed * (k("pedestal_down") - k("pedestal_up")),
                      c.move_speed * (k("dolly_in") - k("dolly_out"))])
    rates = np.array([c.pitch_rate * (k("tilt_up") - k("tilt_down")), c.yaw_rate * (k("pan_right") - k("pan_left")),
                      c.roll_rate * (k("roll_cw") - k("roll_ccw"))])
    p, y, r = c.pitch, c.yaw, c.roll
    pos = c.pos.copy()
    out = [(0, pos.copy())]
    step = np.zeros(3)
    for f in range(1, frames + 1):
        step = rotator_to_rotation(p, y, r) @ v_cam * c.dt
        pos = pos + step
        p = float(np.clip(p + rates[0] * c.dt, *c.pitch_limits))
        y, r = y + rates[1] * c.dt, float(np.clip(r + rates[2] * c.dt, *c.roll_limits))
        if f % every == 0 or f == frames:
            out.append((f, pos.copy()))
    n = np.linalg.norm(step)
    if n > 0:
        out.append((frames, pos + step / n * 0.5))
    return out


def _fit_frames(drv: Driver, keys, speed: float, frames: int, min_frames: int) -> int:
    """Frames (<= frames) for which holding ``keys`` stays collision-free along the predicted
    (possibly curved) path, checked with ``move_to`` probes; 0 if fewer than ``min_frames``.
    Rotation-only keys always fit."""
    if not any(k in _DIR for k in keys):
        return frames
    c = drv.ctrl
    pts = _predict_path(drv, keys, speed, frames)
    ok_frames = frames
    for (f0, a), (f1, b) in zip(pts[:-1], pts[1:]):
        if not c.segment_free(a, b):
            ok_frames = f0 - int(0.5 * c.fps)  # stop well before the blocked stretch
            break
    return ok_frames if ok_frames >= min_frames else 0


def _rotation_frames(drv: Driver, keys, speed: float, frames: int, max_pitch: float, max_roll: float) -> int:
    """Frames (<= frames) a tilt/roll can be held before pitch/roll would leave +-max_pitch /
    +-max_roll (the deceleration coast, ~0.2 s of rate, is accounted for)."""
    c = drv.ctrl
    coast = c.accel_tau
    for up, down, rate, cur, lim in (("tilt_up", "tilt_down", c.pitch_rate, c.pitch, max_pitch),
                                     ("roll_cw", "roll_ccw", c.roll_rate, c.roll, max_roll)):
        sign = (up in keys) - (down in keys)
        if sign == 0:
            continue
        room = lim - sign * cur - speed * rate * coast
        frames = min(frames, int(room / (speed * rate) * c.fps))
    return max(frames, 0)


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
            _level(drv, keys)
            frames = _rotation_frames(drv, keys, speed, frames, max_pitch, max_roll)
            if frames < min_frames:
                continue
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
