"""CameraController against the real embedded backend (collisions through Scene.sweep)."""
import math

import numpy as np
import pytest

from datagen import actions as A
from datagen import conventions as cv
from datagen.backends.base import CaptureBackend
from datagen.backends.embedded import EmbeddedBackend
from datagen.controller import CameraController, parse_command
from datagen.scenes.library import generate_scene


@pytest.fixture(scope="module")
def scene():
    return generate_scene("apartment", 0)


@pytest.fixture
def backend(scene):
    return EmbeddedBackend(scene, width=32, height=24)


def _level_at(pos, yaw):
    c = np.eye(4)
    c[:3, :3] = cv.rotator_to_rotation(0.0, yaw, 0.0)
    c[:3, 3] = pos
    return c


def _open_start(ctrl, need=3.0):
    """Turn the controller (by reset) toward a heading with at least `need` metres free."""
    for yaw in range(-180, 180, 15):
        ctrl.reset(_level_at(ctrl.pos, yaw))
        if ctrl.free_distance(ctrl.pose[:3, 2], need + 0.5) >= need:
            return yaw
    pytest.skip("no open heading from the spawn point")


def test_parse_command_forms_and_errors():
    assert parse_command(None) == {}
    assert parse_command({"W", "LookRight"}) == {"dolly_in": 1.0, "pan_right": 1.0}
    assert parse_command({"dolly_in": 0.5, "static": 1.0, "pan_left": 0.0}) == {"dolly_in": 0.5}
    with pytest.raises(ValueError, match="unknown action key"):
        parse_command({"fly"})
    with pytest.raises(ValueError, match="multiplier"):
        parse_command({"W": -1.0})


def test_idle_does_not_move_and_pose_is_backend_pose(backend):
    ctrl = CameraController(backend)
    p0 = ctrl.pose
    for _ in range(5):
        c = ctrl.step(None)
    np.testing.assert_allclose(c, p0, atol=1e-12)
    np.testing.assert_allclose(backend.get_pose(), c, atol=1e-12)


def test_smooth_acceleration_cruise_and_deceleration_to_true_rest(backend):
    ctrl = CameraController(backend, fps=16, move_speed=1.4, accel_tau=0.2)
    _open_start(ctrl, need=5.0)
    poses = [ctrl.pose]
    for _ in range(24):
        poses.append(ctrl.step({"W"}))
    speeds = []
    for _ in range(30):
        poses.append(ctrl.step(None))
    poses = np.stack(poses)
    v = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1) * 16
    assert np.all(np.diff(v[:24]) > 0)  # accelerates smoothly
    assert v[0] < 0.5 * 1.4  # not an instant jump to full speed
    assert v[23] == pytest.approx(1.4, rel=0.02)  # cruise speed
    assert np.all(np.diff(v[24:]) <= 1e-12)  # decelerates
    assert v[-1] == 0.0 and ctrl.speed == 0.0  # truly at rest (snapped)
    acts, gamma = A.poses_to_actions(poses)
    moving = acts[:24]
    assert np.all(moving[:, A.DOLLY_IN] > 0)
    others = np.delete(moving[:, :12], A.DOLLY_IN, axis=1)
    assert others.max() < 1e-6  # a held W is a pure dolly_in label
    assert acts[-5:, A.STATIC].min() == 1.0


@pytest.mark.parametrize("key,channel", [("pan_right", A.PAN_RIGHT), ("pan_left", A.PAN_LEFT),
                                         ("tilt_up", A.TILT_UP), ("tilt_down", A.TILT_DOWN),
                                         ("roll_cw", A.ROLL_CW), ("roll_ccw", A.ROLL_CCW)])
def test_rotation_commands_light_their_channel_at_the_configured_rate(backend, key, channel):
    ctrl = CameraController(backend, fps=16, yaw_rate=60, pitch_rate=40, roll_rate=30)
    ctrl.reset(_level_at(ctrl.pos, 30.0))  # level: a pan while pitched also shows some roll
    poses = [ctrl.pose] + [ctrl.step({key}) for _ in range(10)]
    acts, _ = A.poses_to_actions(np.stack(poses))
    assert np.all(acts[:10, channel] > 0)
    rate = {"pan": 60, "tilt": 40, "roll": 30}[key.split("_")[0]]
    assert acts[9, channel] * 16 == pytest.approx(rate * (1 - math.exp(-10 / 16 / 0.2)), rel=0.05)
    others = np.delete(acts[:10, 6:12], channel - 6, axis=1)
    assert others.max() < 1e-6


def test_speed_multipliers_scale_velocity(backend):
    ctrl = CameraController(backend, accel_tau=0.0)
    _open_start(ctrl, need=2.0)
    p0 = ctrl.pos.copy()
    ctrl.step({"W": 0.5})
    assert np.linalg.norm(ctrl.pos - p0) == pytest.approx(0.5 * 1.4 / 16, rel=1e-6)


def test_pan_while_pitched_shows_roll_component(backend):
    ctrl = CameraController(backend)
    c = np.eye(4)
    c[:3, :3] = cv.rotator_to_rotation(30.0, 0.0, 0.0)
    c[:3, 3] = ctrl.pos
    ctrl.reset(c)
    poses = np.stack([ctrl.pose] + [ctrl.step({"pan_right"}) for _ in range(10)])
    acts, _ = A.poses_to_actions(poses, dtype=np.float64)
    # yaw about world up, seen from a camera pitched by 30 deg: cos(30) pan + sin(30) roll
    ratio = acts[:10, A.ROLL_CCW] + acts[:10, A.ROLL_CW]
    np.testing.assert_allclose(ratio / acts[:10, A.PAN_RIGHT], math.tan(math.radians(30)), rtol=0.02)


def test_pitch_and_roll_limits(backend):
    ctrl = CameraController(backend, pitch_limits=(-30, 30), roll_limits=(-10, 10))
    for _ in range(80):
        ctrl.step({"tilt_up", "roll_cw"})
    assert ctrl.pitch == pytest.approx(30.0) and ctrl.roll == pytest.approx(10.0)
    for _ in range(120):
        ctrl.step({"tilt_down", "roll_ccw"})
    assert ctrl.pitch == pytest.approx(-30.0) and ctrl.roll == pytest.approx(-10.0)


def test_stops_before_walls_and_records_collisions(backend, scene):
    ctrl = CameraController(backend)
    # face the nearest obstacle
    best = None
    for yaw in range(-180, 180, 10):
        ctrl.reset(_level_at(ctrl.pos, yaw))
        d = ctrl.free_distance(ctrl.pose[:3, 2], 20.0)
        if best is None or d < best[1]:
            best = (yaw, d)
    ctrl.reset(_level_at(ctrl.pos, best[0]))
    n = int((best[1] + 2.0) / 1.4 * 16) + 10
    poses = np.stack([ctrl.pose] + [ctrl.step({"W"}) for _ in range(n)])
    log = ctrl.log()
    assert log["collided"].any()
    clear = scene.clearance(poses[:, :3, 3])
    assert clear.min() >= backend.radius - 2e-3  # never inside the collision radius
    # when blocked, achieved motion is shorter than commanded
    blocked = log["collided"]
    assert np.all(np.linalg.norm(log["achieved_m"][blocked], axis=1)
                  < np.linalg.norm(log["commanded_m"][blocked], axis=1))
    assert ctrl.speed < 0.1  # the obstacle took the momentum


def test_radius_is_applied_to_the_embedded_backend(backend, scene):
    ctrl = CameraController(backend, radius=0.5)
    assert backend.radius == 0.5 and ctrl.radius == 0.5
    for yaw in range(0, 360, 45):
        ctrl.reset(_level_at(ctrl.pos, yaw))
        for _ in range(60):
            ctrl.step({"W"})
    assert scene.clearance(ctrl.pos[None])[0] >= 0.5 - 2e-3


def test_never_leaves_the_walkable_bounds(backend, scene):
    ctrl = CameraController(backend)
    for _ in range(200):
        ctrl.step({"pedestal_up": 2.0})
    assert ctrl.pos[2] <= scene.bounds_max[2] + 1e-9
    assert ctrl.log()["clamped"].any() or ctrl.log()["collided"].any()
    for _ in range(300):
        ctrl.step({"pedestal_down": 2.0})
    assert ctrl.pos[2] >= scene.bounds_min[2] - 1e-9


def test_free_distance_and_segment_free_do_not_change_state(backend):
    ctrl = CameraController(backend)
    before = ctrl.pose
    d = ctrl.free_distance(ctrl.pose[:3, 2], 2.0)
    assert 0.0 <= d <= 2.0
    ctrl.segment_free(ctrl.pos, ctrl.pos + np.array([1.0, 0, 0]))
    np.testing.assert_array_equal(backend.get_pose(), before)
    np.testing.assert_array_equal(ctrl.pose, before)
    assert not ctrl.segment_free(ctrl.pos, ctrl.pos + np.array([0, 0, 100.0]))  # out of bounds


class _BoxRoom(CaptureBackend):
    """A second, independent backend (an empty 4 x 4 x 3 m room, analytic collision): the
    controller only relies on the CaptureBackend interface."""

    def __init__(self):
        self._c2w = _level_at([2.0, 2.0, 1.5], 0.0)

    def set_resolution(self, w, h): ...
    def resolution(self): return (32, 24)
    def set_fov(self, f): ...
    def fov(self): return 90.0
    def get_pose(self): return self._c2w.copy()
    def set_pose(self, c2w): self._c2w = np.array(c2w, float)

    def move_to(self, p):
        p = np.clip(np.asarray(p, float), 0.2, [3.8, 3.8, 2.8])
        self._c2w[:3, 3] = p
        return p.copy()

    def capture(self, kinds=("rgb",)): raise NotImplementedError
    def objects(self): return []
    def scene_info(self): return {"scene_id": "box", "bounds_min": None, "bounds_max": None,
                                  "spawn_c2w": self._c2w.tolist()}


def test_works_on_another_backend_without_bounds():
    be = _BoxRoom()
    ctrl = CameraController(be)
    assert np.all(np.isinf(ctrl.bounds_max))
    for _ in range(100):
        ctrl.step({"W"})
    assert ctrl.pos[0] == pytest.approx(3.8) and ctrl.log()["collided"].any()
