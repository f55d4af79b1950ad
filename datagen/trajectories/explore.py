"""Human-like exploration ("explore").

Like a person at a keyboard: an intent is picked at random, held for a random duration, then the
next one follows. Intents (default probabilities in ``INTENTS``):

    walk      W for 1.5-5 s at 60-110 % speed, sometimes curving (W + a light pan)
    turn      pan left/right by 30-150 deg (eased by the controller's lag)
    look      tilt up/down by 10-35 deg, hold 0.5-1.5 s (sometimes panning), tilt back level
    strafe    A or D for 0.7-2 s
    pause     no key for 0.5-2 s
    backup    S for 0.5-1.2 s
    lift      pedestal up/down to a new height within [-0.3, +0.5] m of the start height
    roll      roll 5-15 deg and back (rare)

The same intent twice in a row has its probability scaled by ``REPEAT_WEIGHT`` (0.3).

Walls: before walking (and every few frames while walking) the controller probes the free
distance ahead with ``move_to``; with less than ``min_free_m`` ahead the person turns toward the
freest of several headings (60-180 deg left or right) instead: the camera turns away from walls
rather than pressing into them. Strafe and backup probe their direction the same way.
"""
from __future__ import annotations

import numpy as np

from datagen.trajectories.base import Driver

REPEAT_WEIGHT = 0.3  # relative weight of picking the same intent twice in a row

INTENTS = {
    "walk": 0.42,
    "turn": 0.15,
    "look": 0.10,
    "strafe": 0.10,
    "pause": 0.12,
    "backup": 0.05,
    "lift": 0.05,
    "roll": 0.04,
}


def turn_away(drv: Driver, rng: np.random.Generator) -> int:
    """Turn toward the freest heading among 60..180 deg left and right of the current one."""
    c = drv.ctrl
    offs = np.array([60, 90, 120, 150, 180, -60, -90, -120, -150]) + rng.uniform(-10, 10, 9)
    yaw, _ = drv.best_heading(c.yaw + offs, max_dist=4.0)
    return drv.turn_to(yaw=yaw, speed=rng.uniform(0.6, 1.0))


def _frames(drv: Driver, lo_s: float, hi_s: float, rng) -> int:
    return max(1, int(round(rng.uniform(lo_s, hi_s) * drv.ctrl.fps)))


def explore(drv: Driver, rng: np.random.Generator, min_free_m: float = 1.2, intents: dict | None = None,
            start_pause_s: float = 0.5, should_stop=None, walk_s=(1.5, 5.0)) -> list:
    """Fill the frame budget with human-like exploration. Returns no revisit plan ([]).

    ``should_stop()`` (optional, for other generators) is checked between intents."""
    probs = dict(INTENTS if intents is None else intents)
    names = list(probs)
    p = np.array([probs[k] for k in names], float)
    p /= p.sum()
    c = drv.ctrl
    z0 = float(c.pos[2])
    drv.phase = "explore"
    drv.hold(None, int(start_pause_s * c.fps))

    last = [None]

    def one() -> int:
        # people rarely repeat the same intent back to back: its weight drops to REPEAT_WEIGHT
        q = np.array([pk * (REPEAT_WEIGHT if k == last[0] else 1.0) for k, pk in zip(names, p)])
        kind = names[int(rng.choice(len(names), p=q / q.sum()))]
        last[0] = kind
        before = drv.remaining
        if kind == "walk":
            if abs(c.pitch) > 3.0:
                drv.turn_to(pitch=0.0)
            if c.free_distance(c.pose[:3, 2], min_free_m + 0.5) < min_free_m:
                turn_away(drv, rng)  # then walk that way, if it is open
            if c.free_distance(c.pose[:3, 2], min_free_m + 0.5) >= min_free_m:
                pan = rng.uniform(-0.35, 0.35) if rng.random() < 0.4 else 0.0
                drv.walk(max_dist_m=8.0, max_frames=_frames(drv, walk_s[0], walk_s[1], rng), speed=rng.uniform(0.6, 1.1),
                         pan=pan, margin_m=min_free_m * 0.6)
        elif kind == "turn":
            angle = rng.uniform(30, 150) * rng.choice([-1, 1])
            drv.turn_to(yaw=c.yaw + angle, speed=rng.uniform(0.5, 1.0))
        elif kind == "look":
            target = rng.uniform(10, 35) * rng.choice([-1, 1])
            drv.turn_to(pitch=target, speed=rng.uniform(0.5, 1.0))
            hold = _frames(drv, 0.5, 1.5, rng)
            if rng.random() < 0.3:
                side = "pan_left" if rng.random() < 0.5 else "pan_right"
                drv.hold({side: rng.uniform(0.3, 0.6)}, hold)
            else:
                drv.hold(None, hold)
            drv.turn_to(pitch=0.0, speed=rng.uniform(0.5, 1.0))
        elif kind == "strafe":
            key, sign = ("truck_right", 1.0) if rng.random() < 0.5 else ("truck_left", -1.0)
            n = _frames(drv, 0.7, 2.0, rng)
            speed = rng.uniform(0.5, 0.9)
            need = speed * c.move_speed * n / c.fps + 0.5
            if c.free_distance(sign * c.pose[:3, 0], need) >= need - 1e-6:
                drv.hold({key: speed}, n)
                drv.settle()
        elif kind == "pause":
            drv.hold(None, _frames(drv, 0.5, 2.0, rng))
        elif kind == "backup":
            n = _frames(drv, 0.5, 1.2, rng)
            speed = rng.uniform(0.4, 0.7)
            need = speed * c.move_speed * n / c.fps + 0.5
            if c.free_distance(-c.pose[:3, 2], need) >= need - 1e-6:
                drv.hold({"dolly_out": speed}, n)
                drv.settle()
        elif kind == "lift":
            lo, hi = max(c.bounds_min[2], z0 - 0.3), min(c.bounds_max[2], z0 + 0.5)
            if hi > lo:
                goal = rng.uniform(lo, hi)
                n = 0
                while abs(goal - c.pos[2]) > 0.05 and n < 3 * c.fps:
                    key = "pedestal_up" if goal > c.pos[2] else "pedestal_down"
                    if not drv.step({key: min(1.0, max(0.2, abs(goal - c.pos[2]) / 0.4))}):
                        break
                    n += 1
                drv.settle()
        elif kind == "roll":
            angle = rng.uniform(5, 15) * rng.choice([-1, 1])
            drv.turn_to(roll=float(np.clip(c.roll + angle, -30, 30)), speed=rng.uniform(0.4, 0.8))
            drv.hold(None, _frames(drv, 0.3, 0.8, rng))
            drv.turn_to(roll=0.0, speed=rng.uniform(0.4, 0.8))
        return before - drv.remaining

    if should_stop is None:
        drv.fill(one)
    else:
        while drv.remaining > 0 and not should_stop():
            if one() == 0 and drv.remaining > 0:
                drv.step(None)
    return []
