"""A collision-constrained, keyboard-like camera controller over any :class:`CaptureBackend`.

The paper's operators flew a camera with a collision-constrained controller; this is ours.

Commands
    A command is what is "held down" for one frame: a set of keys, or a mapping key -> speed
    multiplier (1.0 = the configured speed, 0.5 = half, 2.0 = double). Keys are the RELIC channel
    names or keyboard aliases of :mod:`datagen.actions` (``W S A D``, ``lift_up/lift_down``,
    ``look_up/look_down/look_left/look_right``, ``roll_cw/roll_ccw``). ``None`` or an empty set
    means no key (the camera decelerates to rest). Opposite keys cancel.

Motion model (per frame, dt = 1/fps)
    * Target velocities: translation in the camera's OWN axes (a fly camera, like UE's spectator
      pawn), so holding one key lights exactly one translation label: dolly/truck at
      ``move_speed`` m/s, pedestal at ``lift_speed`` m/s; rotation rates ``yaw_rate``,
      ``pitch_rate``, ``roll_rate`` deg/s.
    * Smooth acceleration and deceleration: each velocity follows its target with a first-order
      lag of time constant ``accel_tau`` s (``v += (target - v) * (1 - exp(-dt/tau))``); a
      velocity whose target is zero snaps to exactly zero once below ``snap_fraction`` of its
      nominal speed, so stopping produces truly static frames.
    * Orientation is kept as a UE rotator (pitch, yaw, roll) like a UE player controller: yaw
      turns about the world up axis (the horizon stays level), pitch is clamped to
      ``pitch_limits`` and roll to ``roll_limits`` (deg). At pitch 0 and roll 0, a yaw command is
      a pure pan label; while pitched, a yaw also shows a small roll component in the camera-frame
      labels (that is the true camera-frame rotation).
    * Translation: the step target (position + R @ v dt) is clamped to the scene's walkable
      bounds (``scene_info()["bounds_min"/"bounds_max"]``, shrunk by ``bounds_margin`` m; a
      backend that reports None, e.g. a bare UE level, is unbounded), then
      requested with ``backend.move_to`` which stops before geometry. The velocity is then set to
      what was actually achieved (a blocked camera does not keep its speed). Order: translate
      with the orientation of frame t (the labels' dP is in frame t's axes), then rotate.

``radius`` (metres, optional) is the camera sphere's clearance to geometry; it is set on backends
that expose a ``radius`` attribute (the embedded backend); a UnrealCV server uses its own.

Every step records the command, the commanded and the achieved world displacement and whether
the move was blocked by geometry (``collided``) or by the bounds (``clamped``): see
:meth:`CameraController.log`.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Optional, Union

import numpy as np

from datagen import conventions as cv
from datagen.actions import CHANNEL_INDEX, channel_name

Command = Union[None, Iterable[str], Mapping[str, float]]


def parse_command(command: Command) -> dict[str, float]:
    """Normalise a command to ``{channel_name: multiplier}`` (static and zero multipliers dropped)."""
    if command is None:
        return {}
    items = command.items() if isinstance(command, Mapping) else ((k, 1.0) for k in command)
    out: dict[str, float] = {}
    for k, m in items:
        name = channel_name(k)
        m = float(m)
        if not math.isfinite(m) or m < 0:
            raise ValueError(f"speed multiplier for {k!r} must be a finite number >= 0, got {m}")
        if name == "static" or m == 0.0:
            continue
        out[name] = out.get(name, 0.0) + m
    return out


class CameraController:
    """Keyboard-like camera over a backend; ``step(command)`` advances one frame and returns c2w."""

    def __init__(
        self,
        backend,
        fps: float = 16.0,
        move_speed: float = 1.4,
        lift_speed: float = 0.8,
        yaw_rate: float = 60.0,
        pitch_rate: float = 40.0,
        roll_rate: float = 30.0,
        accel_tau: float = 0.2,
        pitch_limits: tuple[float, float] = (-75.0, 75.0),
        roll_limits: tuple[float, float] = (-45.0, 45.0),
        radius: Optional[float] = None,
        bounds_margin: float = 1e-3,
        snap_fraction: float = 0.02,
        start_c2w: Optional[np.ndarray] = None,
    ):
        if fps <= 0 or accel_tau < 0:
            raise ValueError("fps must be > 0 and accel_tau >= 0")
        self.backend = backend
        self.fps = float(fps)
        self.dt = 1.0 / self.fps
        self.move_speed = float(move_speed)
        self.lift_speed = float(lift_speed)
        self.yaw_rate = float(yaw_rate)
        self.pitch_rate = float(pitch_rate)
        self.roll_rate = float(roll_rate)
        self.accel_tau = float(accel_tau)
        self.pitch_limits = (float(pitch_limits[0]), float(pitch_limits[1]))
        self.roll_limits = (float(roll_limits[0]), float(roll_limits[1]))
        # the backend's move_to owns collision; a radius given here is applied to backends that
        # expose one (EmbeddedBackend.radius: the camera sphere's clearance in metres)
        if radius is not None and hasattr(backend, "radius"):
            backend.radius = float(radius)
        self.radius = getattr(backend, "radius", radius)
        self.snap_fraction = float(snap_fraction)
        info = backend.scene_info()
        lo, hi = info.get("bounds_min"), info.get("bounds_max")
        # a backend without known bounds (a bare UE level) is unbounded: move_to still collides
        self.bounds_min = np.full(3, -np.inf) if lo is None else np.asarray(lo, np.float64) + bounds_margin
        self.bounds_max = np.full(3, np.inf) if hi is None else np.asarray(hi, np.float64) - bounds_margin
        if np.any(self.bounds_min > self.bounds_max):
            raise ValueError(f"scene bounds are empty: {info['bounds_min']} .. {info['bounds_max']}")
        start = backend.get_pose() if start_c2w is None else np.asarray(start_c2w, np.float64)
        self.reset(start)

    # ------------------------------------------------------------------ state
    def reset(self, c2w: np.ndarray) -> np.ndarray:
        """Teleport to ``c2w`` (position clamped to the bounds), zero velocities, clear the log."""
        c2w = np.asarray(c2w, np.float64)
        pos = np.clip(c2w[:3, 3], self.bounds_min, self.bounds_max)
        self.pitch, self.yaw, self.roll = cv.rotation_to_rotator(c2w[:3, :3])
        self.pitch = float(np.clip(self.pitch, *self.pitch_limits))
        self.roll = float(np.clip(self.roll, *self.roll_limits))
        self.vel = np.zeros(3)  # camera-frame m/s (x right, y down, z forward)
        self.rates = np.zeros(3)  # deg/s (pitch, yaw, roll)
        self.pos = pos.copy()
        self.backend.set_pose(self._c2w())
        self.frame = 0
        self._log: list[dict] = []
        return self.pose

    def _rotation(self) -> np.ndarray:
        return cv.rotator_to_rotation(self.pitch, self.yaw, self.roll)

    def _c2w(self) -> np.ndarray:
        c = np.eye(4)
        c[:3, :3] = self._rotation()
        c[:3, 3] = self.pos
        return c

    @property
    def pose(self) -> np.ndarray:
        """Current camera-to-world 4x4 (a copy)."""
        return self._c2w()

    @property
    def speed(self) -> float:
        """Current translation speed, m/s."""
        return float(np.linalg.norm(self.vel))

    # ------------------------------------------------------------------ stepping
    def _targets(self, cmd: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        g = lambda k: cmd.get(k, 0.0)  # noqa: E731
        vel = np.array(
            [
                self.move_speed * (g("truck_right") - g("truck_left")),
                self.lift_speed * (g("pedestal_down") - g("pedestal_up")),
                self.move_speed * (g("dolly_in") - g("dolly_out")),
            ]
        )
        rates = np.array(
            [
                self.pitch_rate * (g("tilt_up") - g("tilt_down")),
                self.yaw_rate * (g("pan_right") - g("pan_left")),
                self.roll_rate * (g("roll_cw") - g("roll_ccw")),
            ]
        )
        return vel, rates

    def _smooth(self, cur: np.ndarray, target: np.ndarray, nominal: np.ndarray) -> np.ndarray:
        a = 1.0 if self.accel_tau == 0 else 1.0 - math.exp(-self.dt / self.accel_tau)
        new = cur + (target - cur) * a
        snap = (target == 0) & (np.abs(new) < self.snap_fraction * nominal)
        new[snap] = 0.0
        return new

    def step(self, command: Command = None) -> np.ndarray:
        """Advance one frame under ``command``; returns the new camera-to-world 4x4."""
        cmd = parse_command(command)
        t_vel, t_rates = self._targets(cmd)
        self.vel = self._smooth(self.vel, t_vel, np.array([self.move_speed, self.lift_speed, self.move_speed]))
        self.rates = self._smooth(self.rates, t_rates, np.array([self.pitch_rate, self.yaw_rate, self.roll_rate]))

        rot = self._rotation()
        commanded = rot @ (self.vel * self.dt)
        target = self.pos + commanded
        clamped_target = np.clip(target, self.bounds_min, self.bounds_max)
        clamped = bool(np.linalg.norm(clamped_target - target) > 1e-9)
        if np.linalg.norm(clamped_target - self.pos) > 0:
            reached = np.asarray(self.backend.move_to(clamped_target), np.float64).reshape(3)
        else:
            reached = self.pos.copy()
        collided = bool(np.linalg.norm(reached - clamped_target) > 1e-4)
        # never leave the walkable volume, whatever the backend did
        reached = np.clip(reached, self.bounds_min, self.bounds_max)
        achieved = reached - self.pos
        if collided or clamped:
            self.vel = rot.T @ achieved / self.dt  # the obstacle took the momentum
        self.pos = reached

        new_p = self.pitch + self.rates[0] * self.dt
        new_r = self.roll + self.rates[2] * self.dt
        if not (self.pitch_limits[0] <= new_p <= self.pitch_limits[1]):
            new_p = float(np.clip(new_p, *self.pitch_limits))
            self.rates[0] = 0.0
        if not (self.roll_limits[0] <= new_r <= self.roll_limits[1]):
            new_r = float(np.clip(new_r, *self.roll_limits))
            self.rates[2] = 0.0
        self.pitch, self.roll = new_p, new_r
        self.yaw = (self.yaw + self.rates[1] * self.dt + 180.0) % 360.0 - 180.0

        c2w = self._c2w()
        self.backend.set_pose(c2w)
        self._log.append(
            {
                "frame": self.frame,
                "command": cmd,
                "commanded_m": commanded,
                "achieved_m": achieved,
                "collided": collided,
                "clamped": clamped,
            }
        )
        self.frame += 1
        return c2w

    # ------------------------------------------------------------------ probing and log
    def free_distance(self, direction_world, max_dist: float = 3.0) -> float:
        """How far (m, <= max_dist) the camera could move along ``direction_world`` from here.

        Uses ``backend.move_to`` (so it works on any backend) and teleports back; no state change.
        The bounds clamp applies as for :meth:`step`.
        """
        d = np.asarray(direction_world, np.float64)
        n = np.linalg.norm(d)
        if n < 1e-12:
            return 0.0
        d = d / n
        target = np.clip(self.pos + d * max_dist, self.bounds_min, self.bounds_max)
        reached = np.asarray(self.backend.move_to(target), np.float64).reshape(3)
        self.backend.set_pose(self._c2w())
        along = float(np.dot(reached - self.pos, d))
        return max(0.0, min(along, max_dist))

    def segment_free(self, p_from, p_to, tol_m: float = 1e-3) -> bool:
        """Whether the straight move p_from -> p_to (ours, m) is collision-free and inside the
        bounds; probes by teleporting to ``p_from`` and calling ``move_to``, then restores."""
        p_from = np.asarray(p_from, np.float64)
        p_to = np.asarray(p_to, np.float64)
        inside = np.all((p_from >= self.bounds_min) & (p_from <= self.bounds_max)) and np.all(
            (p_to >= self.bounds_min) & (p_to <= self.bounds_max))
        if not inside:
            return False
        c = self._c2w()
        c[:3, 3] = p_from
        self.backend.set_pose(c)
        reached = np.asarray(self.backend.move_to(p_to), np.float64).reshape(3)
        self.backend.set_pose(self._c2w())
        return bool(np.linalg.norm(reached - p_to) <= tol_m)

    def heading_vector(self, yaw_deg: Optional[float] = None) -> np.ndarray:
        """Horizontal unit vector (ours) of a UE yaw (default: the current yaw)."""
        y = math.radians(self.yaw if yaw_deg is None else yaw_deg)
        return cv.ue_point_to_ours([math.cos(y), math.sin(y), 0.0]) * cv.CM_PER_M

    def log(self) -> dict[str, np.ndarray]:
        """Per step arrays: commanded_m (S,3), achieved_m (S,3), collided (S,), clamped (S,),
        and ``commands`` (list of dicts). Step s moves frame s to frame s+1."""
        if not self._log:
            return {"commanded_m": np.zeros((0, 3)), "achieved_m": np.zeros((0, 3)),
                    "collided": np.zeros(0, bool), "clamped": np.zeros(0, bool), "commands": []}
        return {
            "commanded_m": np.stack([r["commanded_m"] for r in self._log]),
            "achieved_m": np.stack([r["achieved_m"] for r in self._log]),
            "collided": np.array([r["collided"] for r in self._log]),
            "clamped": np.array([r["clamped"] for r in self._log]),
            "commands": [r["command"] for r in self._log],
        }


__all__ = ["CameraController", "Command", "parse_command", "CHANNEL_INDEX"]
