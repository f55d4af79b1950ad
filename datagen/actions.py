"""RELIC action labels (paper Algorithm 1) and their inverse.

Poses
    Input poses are ours (see :mod:`datagen.conventions`): camera-to-world 4x4 ``c2w`` in metres,
    OpenCV camera axes (x right, y down, z forward). The paper's world-to-camera rotation is
    ``R_t = c2w_t[:3, :3].T`` and its position ``P_t = c2w_t[:3, 3]``.

Layout
    For N frames, ``actions`` is (N, 13) float32. Row i is the motion from frame i to frame i+1;
    the LAST row has no successor and is labelled static (channel 12 = 1, all others 0).

Channels (fixed order; other tools rely on it)
    ====  ==============  ==========================================================  ==========
    idx   name            meaning (camera frame of frame i)                           unit
    ====  ==============  ==========================================================  ==========
    0     dolly_in        max(+dP_z, 0) / gamma   (move forward, key W)                ratio
    1     dolly_out       max(-dP_z, 0) / gamma   (move backward, key S)               ratio
    2     truck_left      max(-dP_x, 0) / gamma   (move left, key A)                   ratio
    3     truck_right     max(+dP_x, 0) / gamma   (move right, key D)                  ratio
    4     pedestal_up     max(-dP_y, 0) / gamma   (move up; OpenCV y points down)      ratio
    5     pedestal_down   max(+dP_y, 0) / gamma   (move down)                          ratio
    6     tilt_up         max(+pitch, 0)          (look up)                            deg/frame
    7     tilt_down       max(-pitch, 0)          (look down)                          deg/frame
    8     pan_left        max(-yaw, 0)            (look left)                          deg/frame
    9     pan_right       max(+yaw, 0)            (look right; UE yaw turns right)     deg/frame
    10    roll_cw         max(+roll, 0)           (see below)                          deg/frame
    11    roll_ccw        max(-roll, 0)                                                deg/frame
    12    static          1.0 if the step is below both static thresholds, else 0.0    flag
    ====  ==============  ==========================================================  ==========

Translation (channels 0..5)
    ``dP_t = R_t (P_{t+1} - P_t)``, the displacement expressed in camera t's frame, divided by the
    clip's speed coefficient ``gamma`` = mean of the NON-ZERO displacement magnitudes
    ``|P_{t+1} - P_t|`` (metres per frame; "non-zero" means > ``zero_eps_m`` = 1e-9 m, i.e. not
    numerically zero). Translation channels are therefore dimensionless ratios to gamma: 1.0 means
    "moving gamma metres per frame along that axis". When no step moves (an all-static clip)
    gamma = 0 and all translation channels are 0.

Rotation (channels 6..11)
    ``dR_t = R_{t+1} R_t^T`` (maps camera-t coordinates to camera-(t+1) coordinates). Its inverse
    ``dR_t^T = c2w_t^T c2w_{t+1}`` is the orientation of camera t+1 expressed in camera t's frame.
    We read that orientation as a UE rotator in camera t's own UE axes (forward = +z, right = +x,
    up = -y of the OpenCV camera) using :func:`datagen.conventions.rotation_to_rotator`, i.e.
    exactly as UE would report camera t+1's rotation if camera t were the world with identity
    rotation. Signs (UE's): +pitch looks up (tilt_up), +yaw turns right (pan_right), +roll rotates
    the camera clockwise about its forward axis as seen from behind the camera (from the
    operator's seat: the camera's up vector leans to the right; the image content therefore turns
    counter-clockwise on screen) = roll_cw; -roll = roll_ccw. Units: degrees per frame. UE's
    rotator order applies (roll about forward, then pitch about right, then yaw about up), and
    per-frame angles are small, so the three are effectively independent.

Static (channel 12)
    1.0 when ``|P_{t+1}-P_t| <= static_eps_m`` (metres per frame, absolute, not normalised) AND
    ``|pitch|, |yaw|, |roll| <= static_eps_deg`` (degrees per frame); else 0.0. The motion
    channels of a static step still hold their (tiny) values so that the labels stay an exact
    inverse of the poses; a consumer that wants hard zeros can mask with channel 12. Defaults:
    2e-3 m/frame (3.2 cm/s at 16 FPS, ~2% of walking speed) and 0.05 deg/frame (0.8 deg/s at 16 FPS).

Inverse
    :func:`actions_to_poses` integrates like the paper: ``P_{t+1} = P_t + R_t^T (gamma * dP_t)``
    and ``c2w_{t+1}[:3,:3] = c2w_t[:3,:3] @ rot(pitch, yaw, roll)`` (camera-local composition).
    Round trip poses -> labels -> poses: with float64 labels (``dtype=np.float64``) it is exact
    to rounding (tests: <= 1e-6 m and <= 1e-6 deg on every pose of 200-frame random clips). The
    default float32 labels carry ~7 significant digits per step, so errors accumulate along the
    clip; the tests bound them at 1e-4 m and 1e-3 deg over 200 frames.

At inference, :func:`multi_hot` builds a row from pressed keys; scale translation by choosing
gamma (metres per frame) when integrating.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Union

import numpy as np

import datagen.conventions as cv

CHANNELS = (
    "dolly_in",
    "dolly_out",
    "truck_left",
    "truck_right",
    "pedestal_up",
    "pedestal_down",
    "tilt_up",
    "tilt_down",
    "pan_left",
    "pan_right",
    "roll_cw",
    "roll_ccw",
    "static",
)
NUM_CHANNELS = len(CHANNELS)
CHANNEL_INDEX = {name: i for i, name in enumerate(CHANNELS)}

DOLLY_IN, DOLLY_OUT, TRUCK_LEFT, TRUCK_RIGHT, PEDESTAL_UP, PEDESTAL_DOWN = range(6)
TILT_UP, TILT_DOWN, PAN_LEFT, PAN_RIGHT, ROLL_CW, ROLL_CCW, STATIC = range(6, 13)
TRANSLATION_CHANNELS = tuple(range(0, 6))
ROTATION_CHANNELS = tuple(range(6, 12))

# Opposite pairs (used by time reversal checks and by multi_hot's conflict handling).
OPPOSITE = {
    "dolly_in": "dolly_out", "dolly_out": "dolly_in",
    "truck_left": "truck_right", "truck_right": "truck_left",
    "pedestal_up": "pedestal_down", "pedestal_down": "pedestal_up",
    "tilt_up": "tilt_down", "tilt_down": "tilt_up",
    "pan_left": "pan_right", "pan_right": "pan_left",
    "roll_cw": "roll_ccw", "roll_ccw": "roll_cw",
}

# Keyboard names from the paper (W/S, A/D, LiftUp/LiftDown, LookUp/LookDown, LookLeft/LookRight,
# RollCW/RollCCW) -> channel names. Matching is case-insensitive and ignores "_", "-" and spaces.
KEY_ALIASES = {
    "w": "dolly_in", "s": "dolly_out", "a": "truck_left", "d": "truck_right",
    "liftup": "pedestal_up", "liftdown": "pedestal_down",
    "lookup": "tilt_up", "lookdown": "tilt_down",
    "lookleft": "pan_left", "lookright": "pan_right",
    "rollcw": "roll_cw", "rollccw": "roll_ccw",
}

DEFAULT_STATIC_EPS_M = 2e-3
DEFAULT_STATIC_EPS_DEG = 0.05
ZERO_EPS_M = 1e-9
ZERO_EPS_DEG = 1e-9
DEFAULT_ROT_SPEED_DEG = 60.0 / 16.0  # 60 deg/s at 16 FPS, the controller's default yaw rate

# OpenCV camera frame -> "camera as a UE-like world in our right-handed convention"
# (X forward = cam z, Y left = -cam x, Z up = -cam y). conventions.rotation_to_rotator reads a
# rotation in that frame as a UE rotator.
_CV_TO_LOCAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def channel_name(key: str) -> str:
    """Channel name for a channel name or keyboard alias (W, LookLeft, lift_up, ...)."""
    k = str(key).strip()
    if k in CHANNEL_INDEX:
        return k
    norm = k.lower().replace("_", "").replace("-", "").replace(" ", "")
    if norm in KEY_ALIASES:
        return KEY_ALIASES[norm]
    for name in CHANNELS:
        if norm == name.replace("_", ""):
            return name
    raise ValueError(
        f"unknown action key {key!r}: use one of {', '.join(CHANNELS)} or the keys "
        f"{', '.join(sorted(KEY_ALIASES))}"
    )


def relative_rotator(rot_a: np.ndarray, rot_b: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) degrees of rotation ``rot_b`` seen from camera ``rot_a``'s own UE axes.

    Both are 3x3 camera-to-world rotations (ours, OpenCV camera). +pitch = b looks up relative to
    a, +yaw = b looks to the right, +roll = b is rolled clockwise (seen from behind).
    """
    rel = np.asarray(rot_a, dtype=np.float64).T @ np.asarray(rot_b, dtype=np.float64)
    return cv.rotation_to_rotator(_CV_TO_LOCAL @ rel)


def local_rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """3x3 rotation ``rel`` (camera-local, OpenCV axes) with ``relative_rotator(I, rel)`` = (p, y, r).

    ``c2w_next[:3,:3] = c2w[:3,:3] @ local_rotation(p, y, r)`` turns a camera by a UE rotator
    expressed in its own axes.
    """
    return _CV_TO_LOCAL.T @ cv.rotator_to_rotation(float(pitch), float(yaw), float(roll))


def _check_poses(c2w) -> np.ndarray:
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"poses must have shape (N, 4, 4), got {c2w.shape}")
    if len(c2w) < 1:
        raise ValueError("poses must contain at least one frame")
    if not np.all(np.isfinite(c2w)):
        raise ValueError("poses contain NaN or inf")
    return c2w


def pose_deltas(c2w) -> tuple[np.ndarray, np.ndarray]:
    """Per step (N-1 rows): camera-frame displacement dP (metres) and (pitch, yaw, roll) degrees."""
    c2w = _check_poses(c2w)
    n = len(c2w)
    rot = c2w[:, :3, :3]
    pos = c2w[:, :3, 3]
    dpos_world = pos[1:] - pos[:-1]
    dp = np.einsum("nji,nj->ni", rot[:-1], dpos_world)  # R_t (P_{t+1}-P_t), R_t = rot_t^T
    ang = np.zeros((max(n - 1, 0), 3))
    for i in range(n - 1):
        ang[i] = relative_rotator(rot[i], rot[i + 1])
    return dp, ang


def poses_to_actions(
    c2w,
    static_eps_m: float = DEFAULT_STATIC_EPS_M,
    static_eps_deg: float = DEFAULT_STATIC_EPS_DEG,
    zero_eps_m: float = ZERO_EPS_M,
    zero_eps_deg: float = ZERO_EPS_DEG,
    dtype=np.float32,
) -> tuple[np.ndarray, float]:
    """RELIC labels for a clip of N poses: ``(actions (N, 13) float32, gamma metres/frame)``.

    See the module docstring for the exact definition of every channel. ``dtype=np.float64``
    keeps full precision (the round trip is then exact to ~1e-9).
    """
    c2w = _check_poses(c2w)
    n = len(c2w)
    dp, ang = pose_deltas(c2w)
    ang[np.abs(ang) <= zero_eps_deg] = 0.0  # numerical noise of identical orientations
    mag = np.linalg.norm(dp, axis=1)  # rotation preserves length: |dP| = |P_{t+1}-P_t|
    moving = mag > zero_eps_m
    gamma = float(mag[moving].mean()) if np.any(moving) else 0.0
    out = np.zeros((n, NUM_CHANNELS), dtype=np.float64)
    if n > 1:
        t = dp / gamma if gamma > 0 else np.zeros_like(dp)
        out[:-1, DOLLY_IN] = np.maximum(t[:, 2], 0)
        out[:-1, DOLLY_OUT] = np.maximum(-t[:, 2], 0)
        out[:-1, TRUCK_LEFT] = np.maximum(-t[:, 0], 0)
        out[:-1, TRUCK_RIGHT] = np.maximum(t[:, 0], 0)
        out[:-1, PEDESTAL_UP] = np.maximum(-t[:, 1], 0)
        out[:-1, PEDESTAL_DOWN] = np.maximum(t[:, 1], 0)
        pitch, yaw, roll = ang[:, 0], ang[:, 1], ang[:, 2]
        out[:-1, TILT_UP] = np.maximum(pitch, 0)
        out[:-1, TILT_DOWN] = np.maximum(-pitch, 0)
        out[:-1, PAN_LEFT] = np.maximum(-yaw, 0)
        out[:-1, PAN_RIGHT] = np.maximum(yaw, 0)
        out[:-1, ROLL_CW] = np.maximum(roll, 0)
        out[:-1, ROLL_CCW] = np.maximum(-roll, 0)
        still = (mag <= static_eps_m) & np.all(np.abs(ang) <= static_eps_deg, axis=1)
        out[:-1, STATIC] = still.astype(np.float64)
    out[-1, STATIC] = 1.0
    return out.astype(dtype), gamma


def _check_actions(actions) -> np.ndarray:
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != NUM_CHANNELS:
        raise ValueError(f"actions must have shape (N, {NUM_CHANNELS}), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("actions contain NaN or inf")
    return a


def actions_to_deltas(actions) -> tuple[np.ndarray, np.ndarray]:
    """Per row: normalised camera-frame translation (x, y, z) and (pitch, yaw, roll) degrees."""
    a = _check_actions(actions)
    t = np.stack(
        [a[:, TRUCK_RIGHT] - a[:, TRUCK_LEFT], a[:, PEDESTAL_DOWN] - a[:, PEDESTAL_UP], a[:, DOLLY_IN] - a[:, DOLLY_OUT]],
        axis=1,
    )
    ang = np.stack(
        [a[:, TILT_UP] - a[:, TILT_DOWN], a[:, PAN_RIGHT] - a[:, PAN_LEFT], a[:, ROLL_CW] - a[:, ROLL_CCW]], axis=1
    )
    return t, ang


def actions_to_poses(actions, gamma: float, c2w0=None) -> np.ndarray:
    """Integrate labels back to N camera-to-world poses starting at ``c2w0`` (default identity).

    Row i moves frame i to frame i+1; the last row is not used (it has no successor). ``gamma`` is
    in metres per frame (the clip's recorded value, or any speed chosen at inference).
    """
    a = _check_actions(actions)
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a finite non-negative number (metres per frame), got {gamma}")
    c0 = np.eye(4) if c2w0 is None else np.asarray(c2w0, dtype=np.float64)
    if c0.shape != (4, 4):
        raise ValueError(f"c2w0 must be 4x4, got {c0.shape}")
    t, ang = actions_to_deltas(a)
    n = len(a)
    out = np.empty((n, 4, 4))
    out[0] = c0
    for i in range(n - 1):
        rot = out[i, :3, :3]
        nxt = np.eye(4)
        nxt[:3, 3] = out[i, :3, 3] + rot @ (gamma * t[i])
        nxt[:3, :3] = rot @ local_rotation(*ang[i])
        out[i + 1] = nxt
    return out


def multi_hot(
    keys: Union[Iterable[str], Mapping[str, float]],
    speed: float = 1.0,
    rot_speed_deg: float = DEFAULT_ROT_SPEED_DEG,
) -> np.ndarray:
    """One action row (13,) float32 from pressed keys (channel names or keyboard aliases).

    Translation channels get ``speed`` (ratio to gamma: 1.0 = gamma metres per frame), rotation
    channels ``rot_speed_deg`` (degrees per frame). A mapping ``{key: multiplier}`` scales each key
    individually. Opposite keys pressed together both stay set (they cancel when integrated).
    ``static`` is 1 when no motion key is pressed (an empty set or only "static").
    """
    items = keys.items() if isinstance(keys, Mapping) else ((k, 1.0) for k in keys)
    row = np.zeros(NUM_CHANNELS, dtype=np.float32)
    for key, mult in items:
        name = channel_name(key)
        idx = CHANNEL_INDEX[name]
        if idx == STATIC:
            continue
        base = speed if idx in TRANSLATION_CHANNELS else rot_speed_deg
        row[idx] = float(base) * float(mult)
    if not np.any(row[:STATIC] != 0):
        row[STATIC] = 1.0
    return row
