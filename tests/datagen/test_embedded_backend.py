"""EmbeddedBackend: the CaptureBackend interface over the in-process renderer."""
from __future__ import annotations

import numpy as np
import pytest

from datagen.backends.base import BackendError, CaptureBackend
from datagen.backends.embedded import EmbeddedBackend
from datagen.conventions import intrinsics_from_fov
from datagen.scenes.library import generate_scene, save_scene


@pytest.fixture(scope="module")
def backend():
    return EmbeddedBackend(generate_scene("apartment", 2), width=112, height=64)


def test_interface_and_capture_kinds(backend):
    assert isinstance(backend, CaptureBackend)
    assert backend.resolution() == (112, 64) and backend.fov() == 90.0
    assert np.allclose(backend.intrinsics(), intrinsics_from_fov(112, 64, 90.0))
    assert np.allclose(backend.get_pose(), backend.scene.spawn_c2w)
    f = backend.capture(("rgb", "depth", "normal", "mask"))
    assert f.rgb.shape == (64, 112, 3) and f.rgb.dtype == np.uint8
    assert f.depth.shape == (64, 112) and f.depth.dtype == np.float32
    assert f.normal.shape == (64, 112, 3) and f.mask.dtype == np.int32
    assert np.allclose(f.c2w, backend.get_pose()) and np.allclose(f.K, backend.intrinsics())
    assert f.mask.max() < len(backend.objects())
    only = backend.capture(("depth",))
    assert only.rgb is None and np.array_equal(only.depth, f.depth)
    with pytest.raises(BackendError):
        backend.capture(("lit",))


def test_resolution_fov_and_batch(backend):
    backend.set_resolution(48, 32)
    backend.set_fov(60.0)
    try:
        f = backend.capture(("rgb",))
        assert f.rgb.shape == (32, 48, 3)
        assert abs(f.K[0, 0] - 24 / np.tan(np.radians(30))) < 1e-9
        poses = [backend.scene.spawn_c2w, backend.scene.spawn_c2w]
        a, b = backend.capture_batch(poses, ("rgb",))
        assert np.array_equal(a.rgb, b.rgb)
        with pytest.raises(BackendError):
            backend.set_fov(180.0)
        with pytest.raises(BackendError):
            backend.set_resolution(0, 10)
    finally:
        backend.set_resolution(112, 64)
        backend.set_fov(90.0)


def test_move_to_collides_and_keeps_orientation(backend):
    s = backend.scene
    backend.set_pose(s.spawn_c2w)
    R0 = backend.get_pose()[:3, :3].copy()
    start = backend.get_pose()[:3, 3].copy()
    target = start + np.array([100.0, 0.0, 0.0])  # far through walls
    reached = backend.move_to(target)
    assert np.allclose(backend.get_pose()[:3, 3], reached)
    assert np.allclose(backend.get_pose()[:3, :3], R0)
    assert reached[0] < s.bounds_max[0] and s.is_free(reached, backend.radius - 1e-3)
    assert np.linalg.norm(reached - target) > 1.0
    # a short free move arrives exactly
    backend.set_pose(s.spawn_c2w)
    small = s.spawn_c2w[:3, 3] + 0.05 * s.spawn_c2w[:3, 2]
    assert np.allclose(backend.move_to(small), small)
    backend.set_pose(s.spawn_c2w)


def test_scene_info_and_path_constructor(backend, tmp_path):
    info = backend.scene_info()
    for k in ("scene_id", "family", "description", "bounds_min", "bounds_max", "spawn_c2w", "objects"):
        assert k in info
    assert len(info["objects"]) == len(backend.objects())
    assert np.array(info["spawn_c2w"]).shape == (4, 4)
    p = save_scene(backend.scene, tmp_path / "a.json")
    other = EmbeddedBackend(str(p), width=112, height=64)
    assert np.array_equal(other.capture(("rgb",)).rgb, backend.capture(("rgb",)).rgb)
