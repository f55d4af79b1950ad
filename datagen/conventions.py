"""The one place where Unreal Engine's conventions meet ours.

Unreal Engine (UE) convention
    World: left-handed, X forward, Y right, Z up, centimetres.
    Camera orientation: rotator (pitch, yaw, roll) in degrees. The camera looks along the rotator's
    forward axis f, with right axis r and up axis u (formulas in :func:`rotator_axes`).
    Depth from UnrealCV (``depth npy``): planar depth in centimetres.

Our convention (used everywhere else in relic-suite)
    World: right-handed, X forward, Y LEFT, Z up, metres. It is UE's world with Y negated and
    lengths divided by 100, so a UE point (x, y, z) cm is (x/100, -y/100, z/100) m here.
    Camera: OpenCV axes (x right, y down, z forward).
    Pose: camera-to-world 4x4 matrix ``c2w`` (float64), so ``X_world = c2w @ X_cam``.
    Depth: planar (z-buffer) depth in metres, float32; rays that hit nothing have depth ``inf``.
    Intrinsics: 3x3 pinhole K, pixel centres at integer + 0.5 (cx = W/2, cy = H/2 for a centred
    principal point), from UE's horizontal FOV.

No other module may convert between the two: import from here.
"""
from __future__ import annotations

import math

import numpy as np

CM_PER_M = 100.0
NO_HIT_DEPTH = np.inf  # depth value of a ray that hits nothing (sky / void)

# UE world (left-handed, cm) -> ours (right-handed, m): negate Y, divide by 100.
_FLIP_Y = np.diag([1.0, -1.0, 1.0])


def ue_point_to_ours(p_cm) -> np.ndarray:
    """UE world point(s) in cm, shape (..., 3) -> our world point(s) in metres."""
    p = np.asarray(p_cm, dtype=np.float64)
    return (p @ _FLIP_Y) / CM_PER_M


def ours_point_to_ue(p_m) -> np.ndarray:
    """Our world point(s) in metres, shape (..., 3) -> UE world point(s) in cm."""
    p = np.asarray(p_m, dtype=np.float64)
    return (p @ _FLIP_Y) * CM_PER_M


def ue_length_to_ours(length_cm):
    """UE length(s) in cm (heights, radii, distances: no axis) -> metres (float or float64 array)."""
    if np.isscalar(length_cm):
        return float(length_cm) / CM_PER_M
    return np.asarray(length_cm, dtype=np.float64) / CM_PER_M


def ue_direction_to_ours(v) -> np.ndarray:
    """UE world direction(s) (unit vectors, normals), shape (..., 3) -> ours: negate Y, no scaling.

    Keeps the input's float dtype (float32 normals stay float32)."""
    return ours_direction_to_ue(v)  # negating Y is its own inverse


def ours_direction_to_ue(v) -> np.ndarray:
    """Our world direction(s), shape (..., 3) -> UE world direction(s): negate Y, no scaling.

    Keeps the input's float dtype (float32 normals stay float32)."""
    v = np.asarray(v)
    out = v.astype(np.float32 if v.dtype == np.float32 else np.float64, copy=True)
    out[..., 1] *= -1
    return out


def rotator_axes(pitch: float, yaw: float, roll: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward, right and up unit vectors (UE world frame) of a UE rotator given in degrees."""
    p, y, r = (math.radians(v) for v in (pitch, yaw, roll))
    cp, sp, cy, sy, cr, sr = math.cos(p), math.sin(p), math.cos(y), math.sin(y), math.cos(r), math.sin(r)
    f = np.array([cp * cy, cp * sy, sp])
    right = np.array([sr * sp * cy - cr * sy, sr * sp * sy + cr * cy, -sr * cp])
    up = np.array([-(cr * sp * cy + sr * sy), cy * sr - cr * sp * sy, cr * cp])
    return f, right, up


def rotator_to_rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """UE rotator (degrees) -> 3x3 camera-to-world rotation in OUR world with OpenCV camera axes."""
    f, right, up = rotator_axes(pitch, yaw, roll)
    m_ue = np.stack([right, -up, f], axis=1)  # OpenCV x=right, y=down, z=forward, in UE world
    return _FLIP_Y @ m_ue


def rotation_to_rotator(rot: np.ndarray) -> tuple[float, float, float]:
    """3x3 camera-to-world rotation (ours, OpenCV camera axes) -> UE (pitch, yaw, roll) degrees.

    Pitch is in [-90, 90], yaw and roll in (-180, 180]. At pitch = +-90 (gimbal lock) roll is set
    to 0 and yaw absorbs the remaining rotation.
    """
    m_ue = _FLIP_Y @ np.asarray(rot, dtype=np.float64)
    right, down, f = m_ue[:, 0], m_ue[:, 1], m_ue[:, 2]
    up = -down
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, f[2]))))
    if abs(f[2]) > 1.0 - 1e-9:
        # Gimbal lock: forward is vertical; roll=0, yaw from the right vector (r = (-SY, CY, 0)).
        yaw = math.degrees(math.atan2(-right[0], right[1]))
        return pitch, _wrap180(yaw), 0.0
    yaw = math.degrees(math.atan2(f[1], f[0]))
    roll = math.degrees(math.atan2(-right[2], up[2]))
    return pitch, _wrap180(yaw), _wrap180(roll)


def _wrap180(a: float) -> float:
    a = (a + 180.0) % 360.0 - 180.0
    return 180.0 if a == -180.0 else a


def ue_pose_to_c2w(location_cm, rotation_pyr_deg) -> np.ndarray:
    """UE camera location (x, y, z cm) and rotation (pitch, yaw, roll deg) -> our 4x4 c2w."""
    c2w = np.eye(4)
    c2w[:3, :3] = rotator_to_rotation(*[float(v) for v in rotation_pyr_deg])
    c2w[:3, 3] = ue_point_to_ours(location_cm)
    return c2w


def c2w_to_ue_pose(c2w) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Our 4x4 c2w -> (UE location in cm, UE rotator (pitch, yaw, roll) in degrees)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    return ours_point_to_ue(c2w[:3, 3]), rotation_to_rotator(c2w[:3, :3])


def intrinsics_from_fov(width: int, height: int, fov_h_deg: float) -> np.ndarray:
    """Pinhole K from UE's horizontal field of view: fx = fy = (W/2)/tan(FOV/2), centred."""
    if not (0.0 < fov_h_deg < 180.0):
        raise ValueError(f"horizontal FOV must be in (0, 180) degrees, got {fov_h_deg}")
    fx = (width / 2.0) / math.tan(math.radians(fov_h_deg) / 2.0)
    return np.array([[fx, 0.0, width / 2.0], [0.0, fx, height / 2.0], [0.0, 0.0, 1.0]])


def fov_from_intrinsics(K, width: int) -> float:
    """Horizontal FOV in degrees of a pinhole K for an image `width` pixels wide."""
    return math.degrees(2.0 * math.atan((width / 2.0) / float(np.asarray(K)[0, 0])))


def ue_depth_to_ours(depth_cm: np.ndarray, far_cm: float = 1e6) -> np.ndarray:
    """UnrealCV planar depth (cm) -> our planar depth (m, float32); values >= far_cm become inf."""
    d = np.asarray(depth_cm, dtype=np.float32) / np.float32(CM_PER_M)
    d[np.asarray(depth_cm) >= far_cm] = NO_HIT_DEPTH
    return d


def ours_depth_to_ue(depth_m: np.ndarray, far_cm: float = 1e6) -> np.ndarray:
    """Our planar depth (m) -> UnrealCV planar depth (cm, float32); inf becomes far_cm."""
    d = np.asarray(depth_m, dtype=np.float32) * np.float32(CM_PER_M)
    d[~np.isfinite(d)] = np.float32(far_cm)
    return d.astype(np.float32)


def relative_pose(c2w_a, c2w_b) -> np.ndarray:
    """Pose of camera b expressed in camera a's frame: inv(c2w_a) @ c2w_b."""
    return np.linalg.inv(np.asarray(c2w_a)) @ np.asarray(c2w_b)


def look_at(eye_m, target_m, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """c2w (ours, OpenCV camera) at `eye` looking at `target`, with world `up` as screen-up."""
    eye = np.asarray(eye_m, dtype=np.float64)
    z = np.asarray(target_m, dtype=np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(x) < 1e-9:
        x = np.cross(z, np.array([1.0, 0.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w
