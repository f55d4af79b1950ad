"""The :class:`Trajectory` record every generator returns, and shared driving behaviours.

A trajectory is POSES ONLY (no rendering): ``poses`` (N, 4, 4) camera-to-world (ours: metres,
OpenCV camera axes) at ``fps`` frames per second, produced by a :class:`CameraController`
against a real backend (collisions are real).

segments
    ``[{"start": s, "end": e, "action": "dolly_in+pan_right", "command": {...}, "phase": ...}]``:
    the command held on steps s .. e-1, i.e. it moved the camera from frame s to frame e
    (0 <= s < e <= N-1). ``action`` joins the held channel names with "+" in channel order
    ("idle" = no key);
    ``command`` maps channel -> speed multiplier (the first frame's, when a behaviour modulates
    it); ``phase`` names the generator's phase ("out", "back", "look_away", ...).
revisit_plan
    ``[[later, earlier], ...]`` frame pairs the generator intends as revisits (e.g. the frames
    after returning to the start and the frames at the start), verified on the achieved poses
    with the frustum-overlap test of :func:`datagen.revisit_pairs.find_revisit_pairs` (no depth).
log
    the controller's per-step record (commanded vs achieved displacement, collided, clamped).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from datagen.actions import CHANNEL_INDEX, poses_to_actions
from datagen.controller import CameraController, parse_command


@dataclass
class Trajectory:
    """Poses of one camera path plus how they were made. See the module docstring."""

    poses: np.ndarray
    fps: float
    generator: str
    params: dict
    seed: int
    segments: list = field(default_factory=list)
    revisit_plan: list = field(default_factory=list)
    log: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(len(self.poses))

    @property
    def duration_s(self) -> float:
        return self.num_frames / float(self.fps)

    def actions(self, **kwargs):
        """RELIC labels of the poses: ``(actions (N, 13) float32, gamma)``."""
        return poses_to_actions(self.poses, **kwargs)

    def metadata(self) -> dict:
        """JSON-serialisable description (everything but the poses and the per-step log arrays)."""
        log = self.log or {}
        return {
            "generator": self.generator,
            "seed": int(self.seed),
            "fps": float(self.fps),
            "num_frames": self.num_frames,
            "params": to_jsonable(self.params),
            "segments": to_jsonable(self.segments),
            "revisit_plan": [[int(a), int(b)] for a, b in self.revisit_plan],
            "collided_steps": int(np.sum(log.get("collided", []))),
            "clamped_steps": int(np.sum(log.get("clamped", []))),
        }


def to_jsonable(x):
    """Dataclasses, dicts, tuples and numpy values -> plain JSON values (recursively)."""
    import dataclasses

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return to_jsonable(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def _wrap(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


class Driver:
    """Runs commands through a controller under a frame budget and records segments.

    ``n_frames`` is the trajectory length; the initial pose is frame 0, so at most n_frames - 1
    steps run. Behaviours return the number of steps they took (0 when the budget is spent).
    """

    def __init__(self, ctrl: CameraController, n_frames: int, rng: np.random.Generator):
        self.ctrl = ctrl
        self.n_frames = int(n_frames)
        self.rng = rng
        self.poses = [ctrl.pose]
        self.segments: list[dict] = []
        self.phase = ""

    # ---------------------------------------------------------------- budget and segments
    @property
    def frame(self) -> int:
        """Index of the current (latest) frame."""
        return len(self.poses) - 1

    @property
    def remaining(self) -> int:
        """Steps still allowed."""
        return self.n_frames - len(self.poses)

    def _record(self, cmd: dict) -> None:
        action = "+".join(sorted(cmd, key=CHANNEL_INDEX.__getitem__)) if cmd else "idle"
        f = self.frame
        last = self.segments[-1] if self.segments else None
        if last is not None and last["end"] == f and last["action"] == action and last["phase"] == self.phase:
            last["end"] = f + 1
        else:
            self.segments.append({"start": f, "end": f + 1, "action": action,
                                  "command": {k: round(v, 4) for k, v in cmd.items()}, "phase": self.phase})

    def step(self, command=None) -> bool:
        """One step; False (and nothing done) when the budget is spent."""
        if self.remaining <= 0:
            return False
        cmd = parse_command(command)
        self._record(cmd)
        self.poses.append(self.ctrl.step(cmd))
        return True

    def hold(self, command, frames: int) -> int:
        """Hold ``command`` for ``frames`` steps (fewer if the budget runs out)."""
        n = 0
        for _ in range(int(frames)):
            if not self.step(command):
                break
            n += 1
        return n

    def settle(self, max_frames: int = 16) -> int:
        """No key until the camera is at rest (velocities zero)."""
        n = 0
        while n < max_frames and (np.any(self.ctrl.vel != 0) or np.any(self.ctrl.rates != 0)):
            if not self.step(None):
                break
            n += 1
        return n

    # ---------------------------------------------------------------- closed-loop behaviours
    def turn_to(self, yaw: Optional[float] = None, pitch: Optional[float] = None, max_frames: int = 400,
                tol_deg: float = 0.5, speed: float = 1.0, roll: Optional[float] = None) -> int:
        """Pan/tilt/roll until the UE yaw/pitch/roll (deg) are within ``tol_deg``, then settle.

        Like a person: hold the key (at ``speed``), release it when the controller's coasting
        (the lag's remaining rotation, rate * dt * (1-a)/a) would carry the camera to the target,
        then nudge with slow presses if it stopped short.
        """
        c = self.ctrl
        a = 1.0 if c.accel_tau == 0 else 1.0 - math.exp(-c.dt / c.accel_tau)
        coast = c.dt * (1.0 - a) / a  # seconds: remaining angle under release = rate * coast
        axes = (("pan_right", "pan_left", 1, c.yaw_rate, yaw, lambda: c.yaw, True),
                ("tilt_up", "tilt_down", 0, c.pitch_rate, pitch, lambda: c.pitch, False),
                ("roll_cw", "roll_ccw", 2, c.roll_rate, roll, lambda: c.roll, False))
        n = 0
        while n < max_frames:
            cmd = {}
            done = True
            for pos_key, neg_key, i, rate, goal, cur, wraps in axes:
                if goal is None:
                    continue
                e = _wrap(goal - cur()) if wraps else goal - cur()
                w = c.rates[i]
                if abs(e) <= tol_deg and w == 0:
                    continue
                done = False
                if abs(e) <= tol_deg or (w * e > 0 and abs(w) * coast >= abs(e)):
                    continue  # release and coast
                m = min(speed, max(0.04, abs(e) / (rate * 0.5)))
                cmd[pos_key if e > 0 else neg_key] = m
            if done:
                break
            if not self.step(cmd):
                return n
            n += 1
        return n + self.settle()

    def go_to(self, target, max_frames: int = 600, tol_m: float = 0.15, speed: float = 1.0,
              stall_s: float = 1.0, stop: bool = True) -> tuple[int, bool]:
        """Walk to ``target`` (ours, m): turn toward it (in place when it is more than 35 deg off),
        walk with heading correction (pan from 3 deg off until within 0.5 deg), correct height with
        pedestal. With ``stop`` the walk slows down near the target and settles there; without,
        it passes through (a waypoint). Returns (steps, reached). Gives up after ``stall_s``
        without progress (blocked) or ``max_frames`` steps."""
        c = self.ctrl
        target = np.asarray(target, np.float64)
        n = 0
        best = math.inf
        since_best = 0
        stall = int(stall_s * c.fps)
        if abs(c.pitch) > 2.0 or abs(c.roll) > 2.0:
            n += self.turn_to(pitch=0.0, roll=0.0, max_frames=max_frames)
        reached = False
        correcting = True
        while n < max_frames:
            delta = target - c.pos
            dist_h = float(np.hypot(delta[0], delta[1]))
            if dist_h <= tol_m and abs(delta[2]) <= max(tol_m, 0.05):
                reached = True
                break
            # heading to target as a UE yaw: ours Y is UE -Y
            want = math.degrees(math.atan2(-delta[1], delta[0]))
            ey = _wrap(want - c.yaw)
            if dist_h + abs(delta[2]) < best - 0.01 or (abs(ey) >= 35.0 and dist_h > tol_m):
                best, since_best = min(best, dist_h + abs(delta[2])), 0  # progress, or turning in place
            else:
                since_best += 1
                if since_best > stall:
                    break
            cmd: dict[str, float] = {}
            if dist_h > tol_m:
                # heading correction with hysteresis: start beyond 3 deg, stop within 0.5 deg
                correcting = abs(ey) > (0.5 if correcting else 3.0)
                if correcting:
                    cmd["pan_right" if ey > 0 else "pan_left"] = min(1.0, abs(ey) / 25.0)
                if abs(ey) < 35.0:
                    slow = min(1.0, max(0.15, dist_h / 1.0)) if stop else 1.0
                    cmd["dolly_in"] = speed * slow * math.cos(math.radians(ey))
            if abs(delta[2]) > 0.05:
                cmd["pedestal_up" if delta[2] > 0 else "pedestal_down"] = min(1.0, abs(delta[2]) / 0.5)
            if not self.step(cmd):
                return n, False
            n += 1
        if stop or not reached:
            n += self.settle()
        return n, reached

    def best_heading(self, candidates_deg, max_dist: float = 4.0) -> tuple[float, float]:
        """The candidate UE yaw with the most free distance ahead: (yaw, free metres)."""
        best = (float(candidates_deg[0]), -1.0)
        for y in candidates_deg:
            d = self.ctrl.free_distance(self.ctrl.heading_vector(y), max_dist)
            if d > best[1] + 1e-6:
                best = (float(y), d)
        return best

    def walk(self, max_dist_m: float, max_frames: int, speed: float = 1.0, pan: float = 0.0,
             margin_m: float = 0.6, probe_every: int = 6) -> int:
        """Walk forward (optionally curving with a pan multiplier, + = right) until
        ``max_dist_m`` travelled, an obstacle is within ``margin_m`` ahead, or ``max_frames``."""
        c = self.ctrl
        start = c.pos.copy()
        n = 0
        while n < max_frames:
            if np.linalg.norm(c.pos - start) >= max_dist_m:
                break
            if n % probe_every == 0:
                ahead = c.free_distance(c.pose[:3, 2], margin_m + 0.5)
                if ahead < margin_m:
                    break
            cmd = {"dolly_in": speed}
            if pan > 0:
                cmd["pan_right"] = pan
            elif pan < 0:
                cmd["pan_left"] = -pan
            if not self.step(cmd):
                return n
            n += 1
        return n + self.settle()

    def fill(self, behaviour: Callable[[], int]) -> None:
        """Run ``behaviour`` repeatedly until the budget is spent (guarding against no progress)."""
        stuck = 0
        while self.remaining > 0:
            took = behaviour()
            if took == 0:
                stuck += 1
                if stuck > 3:
                    self.hold(None, self.remaining)
                    return
            else:
                stuck = 0

    def pad(self) -> None:
        """Idle until the budget is spent."""
        self.hold(None, self.remaining)

    def result(self) -> np.ndarray:
        return np.stack(self.poses)
