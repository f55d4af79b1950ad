"""Revisit generators: camera paths that come back to earlier viewpoints.

Each generator names its phases (``segments[*]["phase"]``) and lists the phases whose frames are
meant to revisit earlier ones; :func:`plan_from_phases` turns that into ``revisit_plan`` pairs by
running :func:`datagen.revisit_pairs.find_revisit_pairs` on the achieved poses (frustum overlap, no
depth; defaults: >= 2 s apart, <= 1 m, <= 30 deg, overlap >= 0.5, and the camera must have left
the earlier view in between).

revisit_out_and_back
    Turn toward the freest heading within +-90 deg, walk out (sized so that the way back fits in
    the remaining frames: ``out_frac`` of (remaining - 10 s) / 2.1, at most ``max_out_s``; or until
    an obstacle), turn around, walk back to the start, turn to the starting view; repeat in a new
    direction while frames remain. Revisit phases: "back", "facing_start".
revisit_loop
    Closed loops, checked beforehand with collision probes along the whole path: a circle (walk
    while panning, radius v/omega of 1.1-2.5 m, released when the coasting completes 360 deg) or a
    polygon (3 or 4 legs of 1.5-4 m, turning right or left), sized so one lap takes at most
    ``lap_frac`` of the remaining frames; closed by walking to the exact start and turning to the
    starting view; repeated while frames remain (later laps revisit earlier ones). Revisit
    phases: "close" and every lap after the first.
revisit_pan360
    Stand still and pan a full circle or more (1.2-2 turns over the clip, one direction, with an
    optional pause); frames after the first 360 deg revisit the first turn. Revisit phase:
    "pan_again".
revisit_look_away
    Look at a view, pan away by 90-180 deg (or tilt away by 35-60 deg), hold, look back; repeat,
    sometimes walking a little to a new spot in between. Revisit phase: "look_back".
revisit_return_to_start
    Wander like "explore" (more walking: ``WANDER_INTENTS``) for 45-60 % of the clip, or less
    when the way back would no longer fit, then navigate back along the travelled path with
    "string pulling" (head for the earliest path point reachable in a collision-free straight
    line, checked with ``move_to`` probes) to the start position and turn to the start
    orientation; repeated from the start while >= 14 s remain; finally look around and back.
    Revisit phases: "return", "at_start".
"""
from __future__ import annotations

import math

import numpy as np

from datagen.revisit_pairs import find_revisit_pairs
from datagen.trajectories.base import Driver, _wrap
from datagen.trajectories.explore import explore


def phase_per_frame(drv: Driver) -> list[str]:
    """Phase of each frame (frame f gets the phase of the step that reached it; frame 0 the first)."""
    n = len(drv.poses)
    out = [drv.segments[0]["phase"] if drv.segments else ""] * n
    for s in drv.segments:
        for f in range(s["start"] + 1, s["end"] + 1):
            out[f] = s["phase"]
    return out


def plan_from_phases(drv: Driver, revisit_phases, min_gap_s: float = 2.0, max_dist_m: float = 1.0,
                     max_rot_deg: float = 30.0, min_overlap: float = 0.5) -> list:
    """[[later, earlier], ...] for later frames in ``revisit_phases`` (see the module docstring);
    a phase "lap" also matches "lap:2", "lap:3", ..."""
    be = drv.ctrl.backend
    w, h = be.resolution()
    poses = np.stack(drv.poses)
    df = find_revisit_pairs(poses, be.intrinsics(), w, h, None, fps=drv.ctrl.fps, min_gap_s=min_gap_s,
                            max_dist_m=max_dist_m, max_rot_deg=max_rot_deg, min_overlap=min_overlap)
    phases = phase_per_frame(drv)
    wanted = set(revisit_phases)
    return [[int(a), int(b)] for a, b in zip(df["later"], df["earlier"])
            if any(phases[a] == p or phases[a].startswith(p + ":") for p in wanted)]


def _open_heading(drv: Driver, rng, max_dist=8.0, spread=360.0) -> tuple[float, float]:
    """The freest heading among 12 around the current yaw (within +-spread/2)."""
    offs = np.linspace(-spread / 2, spread / 2, 12, endpoint=spread < 360) + rng.uniform(-10, 10)
    return drv.best_heading(drv.ctrl.yaw + offs, max_dist=max_dist)


def revisit_out_and_back(drv: Driver, rng: np.random.Generator, out_frac=(0.7, 1.0), speed=(0.7, 1.0),
                         margin_m: float = 0.8, max_out_s: float = 6.0) -> list:
    c = drv.ctrl
    drv.phase = "start"
    drv.hold(None, int(0.5 * c.fps))

    def one() -> int:
        before = drv.remaining
        drv.phase = "setup"
        yaw, free = _open_heading(drv, rng, spread=180.0)
        if free < 2.0:
            yaw, free = _open_heading(drv, rng)
        drv.turn_to(yaw=yaw, pitch=0.0, roll=0.0)
        p0, yaw0 = c.pos.copy(), c.yaw
        drv.hold(None, int(rng.uniform(0.5, 1.0) * c.fps))
        drv.phase = "out"
        # leave time for: two 180-degree turns, the walk back (~1.1x the walk out) and holds
        spare = drv.remaining - 10.0 * c.fps
        out_frames = int(min(max_out_s * c.fps, max(c.fps, rng.uniform(*out_frac) * spare / 2.1)))
        spd = rng.uniform(*speed)
        drv.walk(max_dist_m=max(0.0, free - margin_m), max_frames=out_frames, speed=spd, margin_m=margin_m)
        drv.hold(None, int(rng.uniform(0.3, 0.8) * c.fps))
        drv.phase = "turn"
        drv.turn_to(yaw=yaw0 + 180.0 + rng.choice([-1.0, 1.0]))
        drv.phase = "back"
        drv.go_to(p0, speed=spd, max_frames=max(1, drv.remaining))
        drv.phase = "facing_start"
        drv.turn_to(yaw=yaw0, pitch=0.0)
        drv.hold(None, int(rng.uniform(1.0, 2.0) * c.fps))
        return before - drv.remaining

    drv.fill(one)
    return plan_from_phases(drv, {"back", "facing_start"})


def _circle_points(p0, fwd, right, r, sign, k=16):
    th = np.linspace(0.0, 2 * np.pi, k + 1)
    centre = p0 + sign * r * right
    return centre[None] - sign * r * right[None] * np.cos(th)[:, None] + r * fwd[None] * np.sin(th)[:, None]


def _polygon_points(p0, yaw, n_sides, leg, sign, heading_vector):
    pts = [p0]
    for i in range(n_sides):
        pts.append(pts[-1] + leg * heading_vector(yaw + sign * i * 360.0 / n_sides))
    return np.stack(pts)


def _path_free(c, pts) -> bool:
    return all(c.segment_free(a, b) for a, b in zip(pts[:-1], pts[1:]))


def revisit_loop(drv: Driver, rng: np.random.Generator, shape: str = "auto", sides=(3, 4), leg_m=(1.5, 4.0),
                 radius_m=(1.1, 2.5), speed=(0.6, 1.0), lap_frac: float = 0.6) -> list:
    """Closed loops; ``shape`` "circle" (walk while panning: radius v/omega), "polygon" or "auto"
    (a random one that fits, checked with collision probes along the path)."""
    if shape not in ("auto", "circle", "polygon"):
        raise ValueError(f"shape must be 'auto', 'circle' or 'polygon', got {shape!r}")
    c = drv.ctrl
    drv.phase = "start"
    drv.hold(None, int(0.5 * c.fps))
    drv.turn_to(pitch=0.0, roll=0.0)
    p0 = c.pos.copy()
    spd = rng.uniform(*speed)
    v = spd * c.move_speed
    budget_s = lap_frac * drv.remaining / c.fps
    shapes = [shape] if shape != "auto" else list(rng.permutation(["circle", "polygon"]))
    plan = None
    for shp in shapes:
        for _ in range(12):
            yaw = c.yaw + rng.uniform(-180, 180)
            sign = float(rng.choice([-1.0, 1.0]))
            fwd = c.heading_vector(yaw)
            right = np.array([fwd[1], -fwd[0], 0.0])  # camera x (right) of a level camera, ours
            if shp == "circle":
                r_min = v / math.radians(c.yaw_rate)
                r_max = min(radius_m[1], v * budget_s / (2 * np.pi))
                if r_max < max(r_min, radius_m[0]):
                    break
                r = rng.uniform(max(r_min, radius_m[0]), r_max)
                if _path_free(c, _circle_points(p0, fwd, right, r, sign)):
                    plan = ("circle", yaw, sign, r)
                    break
            else:
                n_sides = int(rng.choice(sides))
                turn_s = (360.0 / n_sides) / c.yaw_rate + 1.0
                leg_budget = (budget_s - n_sides * turn_s) / n_sides * v
                leg = min(rng.uniform(*leg_m), leg_budget)
                if leg < 0.8:
                    break
                if _path_free(c, _polygon_points(p0, yaw, n_sides, leg, sign, c.heading_vector)):
                    plan = ("polygon", yaw, sign, (n_sides, leg))
                    break
        if plan is not None:
            break
    if plan is None:  # nothing fits: a small polygon that may be cut short by walls
        plan = ("polygon", c.yaw, 1.0, (4, 1.0))
    kind, yaw0, sign, arg = plan
    drv.phase = "setup"
    drv.turn_to(yaw=yaw0)
    yaw0 = c.yaw
    drv.hold(None, int(0.5 * c.fps))
    lap = [0]

    def one() -> int:
        before = drv.remaining
        lap[0] += 1
        drv.phase = f"lap:{lap[0]}" if lap[0] > 1 else "first_lap"
        if kind == "circle":
            r = arg
            m = math.degrees(v / r) / c.yaw_rate
            key = "pan_right" if sign > 0 else "pan_left"
            turned, prev = 0.0, c.yaw
            a = 1.0 - math.exp(-c.dt / c.accel_tau) if c.accel_tau > 0 else 1.0
            coast = c.dt * (1.0 - a) / a
            while turned + abs(c.rates[1]) * coast < 360.0 and drv.step({"dolly_in": spd, key: m}):
                turned += abs(_wrap(c.yaw - prev))
                prev = c.yaw
            drv.settle()
        else:
            n_sides, leg = arg
            for i in range(n_sides):
                drv.walk(max_dist_m=leg, max_frames=drv.remaining, speed=spd, margin_m=0.5)
                if i < n_sides - 1:
                    drv.turn_to(yaw=yaw0 + sign * (i + 1) * 360.0 / n_sides)
        drv.phase = "close"
        drv.go_to(p0, speed=spd, max_frames=max(1, drv.remaining))
        drv.turn_to(yaw=yaw0, pitch=0.0)
        drv.hold(None, int(rng.uniform(0.5, 1.0) * c.fps))
        return before - drv.remaining

    drv.fill(one)
    return plan_from_phases(drv, {"close", "lap"})


def revisit_pan360(drv: Driver, rng: np.random.Generator, turns=(1.2, 2.0), pause_prob: float = 0.5) -> list:
    c = drv.ctrl
    drv.phase = "start"
    drv.turn_to(pitch=0.0, roll=0.0)
    drv.hold(None, int(rng.uniform(0.5, 1.0) * c.fps))
    total = rng.uniform(*turns) * 360.0
    pause = int(rng.uniform(0.5, 1.5) * c.fps) if rng.random() < pause_prob else 0
    pause_at = rng.uniform(0.3, 0.7) * total
    avail_s = max(1e-3, (drv.remaining - pause - 0.5 * c.fps) / c.fps)
    mult = float(np.clip(total / avail_s / c.yaw_rate, 0.2, 1.0))
    key = "pan_right" if rng.random() < 0.5 else "pan_left"
    drv.phase = "pan"
    turned = 0.0
    paused = False
    prev = c.yaw
    while drv.remaining > 0:
        if pause and not paused and turned >= pause_at:
            drv.settle()
            drv.hold(None, pause)
            paused = True
            continue
        drv.step({key: mult})
        turned += abs(_wrap(c.yaw - prev))
        prev = c.yaw
        if turned >= 360.0:
            drv.phase = "pan_again"
    return plan_from_phases(drv, {"pan_again"})


def revisit_look_away(drv: Driver, rng: np.random.Generator, away_deg=(90.0, 180.0), tilt_prob: float = 0.3,
                      move_prob: float = 0.5) -> list:
    c = drv.ctrl
    drv.phase = "start"
    drv.turn_to(pitch=0.0, roll=0.0)

    def one() -> int:
        before = drv.remaining
        drv.phase = "look"
        yaw0, pitch0 = c.yaw, c.pitch
        drv.hold(None, int(rng.uniform(1.0, 2.0) * c.fps))
        drv.phase = "away"
        if rng.random() < tilt_prob:
            drv.turn_to(pitch=float(rng.choice([-1, 1]) * rng.uniform(35, 60)), speed=rng.uniform(0.6, 1.0))
        else:
            drv.turn_to(yaw=yaw0 + rng.choice([-1, 1]) * rng.uniform(*away_deg), speed=rng.uniform(0.6, 1.0))
        drv.hold(None, int(rng.uniform(0.5, 2.0) * c.fps))
        drv.phase = "look_back"
        drv.turn_to(yaw=yaw0, pitch=pitch0, speed=rng.uniform(0.6, 1.0))
        drv.hold(None, int(rng.uniform(1.0, 2.0) * c.fps))
        if rng.random() < move_prob:
            drv.phase = "move"
            yaw, free = _open_heading(drv, rng, max_dist=4.0)
            drv.turn_to(yaw=yaw, speed=0.8)
            drv.walk(max_dist_m=max(0.0, min(rng.uniform(1.0, 2.5), free - 0.8)), max_frames=drv.remaining,
                     speed=rng.uniform(0.6, 1.0))
        return before - drv.remaining

    drv.fill(one)
    return plan_from_phases(drv, {"look_back"})


WANDER_INTENTS = {"walk": 0.6, "turn": 0.15, "look": 0.08, "strafe": 0.07, "pause": 0.1}


def revisit_return_to_start(drv: Driver, rng: np.random.Generator, wander_frac=(0.45, 0.6),
                            wander_intents: dict | None = None, speed=(0.7, 1.0),
                            min_cycle_s: float = 14.0) -> list:
    """Wander and come back to the start pose; repeated (each time from the start) while at least
    ``min_cycle_s`` seconds remain, so long clips do not end in a long idle stretch."""
    c = drv.ctrl
    p0 = c.pos.copy()
    pitch0, yaw0, roll0 = c.pitch, c.yaw, c.roll
    full = drv.n_frames
    spd = rng.uniform(*speed)
    v = spd * c.move_speed
    cycle = 0
    while True:
        cycle += 1
        first = len(drv.poses) - 1

        def path_length() -> float:
            pts = np.stack([p[:3, 3] for p in drv.poses[first:]])
            return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()) if len(pts) > 1 else 0.0

        def time_to_return() -> bool:  # walking back along the path + turns + arrival must still fit
            need_s = 1.2 * path_length() / v + 10.5  # + two turns of up to 180 deg, holds
            return (full - len(drv.poses)) / c.fps <= need_s

        drv.n_frames = min(full, len(drv.poses) + max(1, int(rng.uniform(*wander_frac) * drv.remaining)))
        explore(drv, rng, intents=wander_intents or WANDER_INTENTS, should_stop=time_to_return,
                walk_s=(1.0, min(5.0, max(1.5, 0.1 * full / c.fps))), start_pause_s=0.5 if cycle == 1 else 0.0)
        drv.n_frames = full
        drv.settle()
        drv.phase = "return"
        path = [p[:3, 3].copy() for p in drv.poses[first:]]
        # string pulling: from where we are, head for the path point closest to the start (in
        # path order) that is reachable in a straight, collision-free line
        idx = len(path) - 1
        failed: set[int] = set()
        while drv.remaining > 0 and len(failed) < 40:
            if np.linalg.norm(c.pos[:2] - p0[:2]) < 0.15 and abs(c.pos[2] - p0[2]) < 0.1:
                break
            nxt = None
            for j in range(0, idx, max(1, idx // 24)):
                if j not in failed and c.segment_free(c.pos, path[j]):
                    nxt = j
                    break
            if nxt is None:
                nxt = max(0, idx - int(c.fps))  # fall back to retracing a short stretch
            final = nxt == 0
            d = path[nxt] - c.pos
            if np.hypot(d[0], d[1]) > 0.3:  # face the next point first, so the walk is straight
                drv.turn_to(yaw=math.degrees(math.atan2(-d[1], d[0])), tol_deg=2.0)
            took, ok = drv.go_to(path[nxt], tol_m=0.12 if final else 0.4, speed=spd, stop=final,
                                 max_frames=max(1, drv.remaining))
            if not ok:
                failed.add(nxt)
            elif final:
                break
            idx = nxt if ok else idx
        drv.turn_to(yaw=yaw0, pitch=pitch0, roll=roll0)
        drv.phase = "at_start"
        drv.hold(None, int(1.0 * c.fps))
        if drv.remaining < min_cycle_s * c.fps:
            break
    if drv.remaining > 2 * c.fps:  # look around a little, then back to the start view
        drv.turn_to(yaw=yaw0 + rng.choice([-1, 1]) * rng.uniform(30, 90), speed=0.7)
        drv.hold(None, int(0.5 * c.fps))
        drv.turn_to(yaw=yaw0, pitch=pitch0, speed=0.7)
    drv.pad()
    return plan_from_phases(drv, {"return", "at_start"})
