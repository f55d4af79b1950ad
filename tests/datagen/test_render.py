"""The embedded renderer: analytic depth, projection, determinism, masks, normals, any size."""
from __future__ import annotations

import numpy as np
import pytest

from datagen.conventions import intrinsics_from_fov, look_at
from datagen.render.presets import RESOLUTIONS, resolution
from datagen.render.renderer import Renderer
from datagen.scenes.builder import SceneBuilder
from datagen.scenes.library import generate_scene


def _facing_wall_scene(dist=4.0):
    """A big wall whose face is the plane x = dist, plus a 10 cm marker cube centred at (dist - 1, 0.6, 0.7)."""
    b = SceneBuilder("test", 0)
    m = b.material("white", "paint", (0.8, 0.8, 0.8))
    w = b.obj("wall", "a wall", m)
    b.box(w, m, (dist + 0.5, 0, 0), (1.0, 200, 200))
    c = b.obj("marker", "a marker cube", m)
    b.box(c, m, (dist - 1.0, 0.6, 1.0 - 0.3), (0.1, 0.1, 0.1))
    return b.build(description="wall", bounds_min=(-1, -5, -5), bounds_max=(dist - 0.5, 5, 5), camera_height=1.0,
                   spawn_candidates=[(0, 0, 1.0)], spec={"family": "test", "seed": 0})


def test_planar_depth_exact_on_a_wall():
    s = _facing_wall_scene(4.0)
    r = Renderer(s)
    c2w = look_at((0.0, 0.0, 1.0), (1.0, 0.0, 1.0))
    for (w, h, fov) in ((64, 48, 90.0), (37, 23, 120.0)):
        f = r.render(c2w, intrinsics_from_fov(w, h, fov), w, h, ("depth", "mask", "normal"))
        wall = f.mask == 0
        assert wall.mean() > 0.9
        # planar depth: every wall pixel, even at the image corners, is exactly 4 m
        assert np.allclose(f.depth[wall], 4.0, atol=2e-5)
        assert f.depth.dtype == np.float32 and f.mask.dtype == np.int32 and f.normal.dtype == np.float32
        # normals face the camera: the wall's normal is -x
        assert np.allclose(f.normal[wall], (-1, 0, 0), atol=1e-5)


def test_depth_inf_and_mask_minus_one_where_nothing_is_hit():
    s = _facing_wall_scene(4.0)
    f = Renderer(s).render(look_at((0, 0, 1.0), (-1, 0, 1.0)), intrinsics_from_fov(32, 24, 60), 32, 24,
                           ("depth", "mask", "normal", "rgb"))
    assert np.all(np.isinf(f.depth)) and np.all(f.mask == -1) and np.all(f.normal == 0)
    assert f.rgb.dtype == np.uint8 and f.rgb.shape == (24, 32, 3)


def test_known_point_lands_at_predicted_pixel():
    """The marker cube's centre (projected with K and inv(c2w)) is where the mask shows it."""
    s = _facing_wall_scene(4.0)
    r = Renderer(s)
    c2w = look_at((0.0, 0.0, 1.0), (1.0, 0.0, 1.0))
    w, h = 200, 160
    K = intrinsics_from_fov(w, h, 70.0)
    f = r.render(c2w, K, w, h, ("mask", "depth"))
    X = np.array([4.0 - 1.0 - 0.05, 0.6, 0.7, 1.0])  # centre of the cube's camera-facing face
    xc = np.linalg.inv(c2w) @ X
    u, v = (K @ (xc[:3] / xc[2]))[:2]
    ys, xs = np.nonzero(f.mask == 1)
    assert len(xs) > 4
    # pixel centres are at integer + 0.5
    assert abs((xs.mean() + 0.5) - u) < 0.6 and abs((ys.mean() + 0.5) - v) < 0.6
    assert abs(float(f.depth[int(v), int(u)]) - xc[2]) < 1e-4
    # in our world +y is LEFT: the marker at y = +0.6 appears left of centre; it is 0.3 m below
    # the eye, so below the image centre (image y grows downward)
    assert u < w / 2 and v > h / 2


@pytest.mark.parametrize("family", ["apartment", "street"])
def test_same_pose_twice_identical_and_scenes_differ(family):
    s = generate_scene(family, 5)
    K = intrinsics_from_fov(112, 64, 90)
    a = Renderer(s).render(s.spawn_c2w, K, 112, 64, ("rgb", "depth", "normal", "mask"))
    r2 = Renderer(generate_scene(family, 5))
    b = r2.render(s.spawn_c2w, K, 112, 64, ("rgb", "depth", "normal", "mask"))
    for k in ("rgb", "depth", "normal", "mask"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    c = r2.render(s.spawn_c2w, K, 112, 64, ("rgb",))
    assert np.array_equal(a.rgb, c.rgb)
    other = generate_scene(family, 6)
    o = Renderer(other).render(other.spawn_c2w, K, 112, 64, ("rgb",))
    assert np.abs(o.rgb.astype(int) - a.rgb.astype(int)).mean() > 10
    # mask ids index objects; every object id seen is valid
    ids = np.unique(a.mask)
    assert ids.min() >= -1 and ids.max() < len(s.objects)
    # normals are unit where hit
    hit = a.mask >= 0
    assert np.allclose(np.linalg.norm(a.normal[hit], axis=-1), 1.0, atol=1e-4)


def test_two_apartments_rooms_look_different():
    K = intrinsics_from_fov(112, 64, 90)
    imgs = []
    for seed in range(4):
        s = generate_scene("apartment", seed)
        imgs.append(Renderer(s).render(s.spawn_c2w, K, 112, 64, ("rgb",)).rgb.astype(float))
    means = [im.reshape(-1, 3).mean(0) for im in imgs]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(imgs[i] - imgs[j]).mean() > 8
    assert np.std(np.array(means), axis=0).max() > 3


def test_shadows_darken_and_are_deterministic():
    s = generate_scene("park", 0)
    K = intrinsics_from_fov(112, 64, 90)
    r = Renderer(s)
    c2w = s.spawn_c2w.copy()
    lit = r.render(c2w, K, 112, 64, ("rgb",), shadows=False).rgb.astype(int)
    sh = r.render(c2w, K, 112, 64, ("rgb",), shadows=True).rgb.astype(int)
    assert np.all(sh <= lit)


def test_presets_divisible_by_8_and_parse():
    assert RESOLUTIONS["paper"] == (832, 480) and RESOLUTIONS["train"] == (112, 64)
    for w, h in RESOLUTIONS.values():
        assert w % 8 == 0 and h % 8 == 0
    assert resolution("320x200") == (320, 200)
    with pytest.raises(ValueError):
        resolution("big")


def test_bad_kinds_rejected():
    s = _facing_wall_scene()
    with pytest.raises(ValueError, match="unknown capture kind"):
        Renderer(s).render(np.eye(4), intrinsics_from_fov(8, 8, 90), 8, 8, ("lit",))


def test_concurrent_renders_are_consistent():
    import threading

    s = generate_scene("office", 1)
    r = Renderer(s)
    K = intrinsics_from_fov(96, 64, 90)
    ref = r.render(s.spawn_c2w, K, 96, 64, ("rgb", "depth")).rgb
    outs = []

    def work():
        outs.append(r.render(s.spawn_c2w, K, 96, 64, ("rgb", "depth")).rgb)

    th = [threading.Thread(target=work) for _ in range(4)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    assert len(outs) == 4 and all(np.array_equal(o, ref) for o in outs)


def test_paintings_have_distinct_textures_per_instance():
    from datagen.render.textures import make_texture

    tex = []
    for seed in (0, 1):
        s = generate_scene("apartment", seed)
        tex += [make_texture(m) for m in s.materials if m.kind in ("painting", "poster")]
    assert len(tex) >= 4
    for i in range(len(tex)):
        for j in range(i + 1, len(tex)):
            assert np.abs(tex[i] - tex[j]).mean() > 0.03


def test_output_does_not_depend_on_thread_count():
    s = generate_scene("street", 2)
    K = intrinsics_from_fov(256, 160, 90)  # > 20000 pixels: shaded in row chunks when threads > 1
    a = Renderer(s, threads=1).render(s.spawn_c2w, K, 256, 160, ("rgb", "normal"))
    b = Renderer(s, threads=3, nthreads=1).render(s.spawn_c2w, K, 256, 160, ("rgb", "normal"))
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.normal, b.normal)


def test_block_shadow_rays_match_per_pixel_shadows():
    """Stride-2 shadow rays (default at large sizes) agree with one ray per pixel except at a
    small fraction of pixels on shadow boundaries; depth and masks are untouched."""
    s = generate_scene("park", 1)
    K = intrinsics_from_fov(640, 360, 90)
    a_r, b_r = Renderer(s), Renderer(s)
    a_r.shadow_stride = 1
    a = a_r.render(s.spawn_c2w, K, 640, 360, ("rgb", "depth"))
    b = b_r.render(s.spawn_c2w, K, 640, 360, ("rgb", "depth"))
    assert np.array_equal(a.depth, b.depth)
    differ = np.abs(a.rgb.astype(int) - b.rgb.astype(int)).max(-1) > 0
    assert differ.mean() < 0.02
    shadowed = (a_r.render(s.spawn_c2w, K, 640, 360, ("rgb",), shadows=False).rgb.astype(int)
                - a.rgb.astype(int)).max(-1) > 0
    assert shadowed.mean() > 0.02  # there are shadows to compare
