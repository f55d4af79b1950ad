"""Forward splatting (reproject's warp) on analytic geometry: exactness and occlusion handling."""
import numpy as np

from benchmark.adapters.reproject import forward_splat


def _K(w, h, f):
    return np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])


def test_identity_warp_is_exact_and_complete():
    rng = np.random.default_rng(0)
    h, w = 40, 64
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = rng.uniform(1, 5, (h, w)).astype(np.float32)
    depth[:5] = np.inf  # sky rows
    out, cov = forward_splat(rgb, depth, _K(w, h, 32.0), np.eye(4))
    assert cov.all()
    np.testing.assert_array_equal(out, rgb)


def test_translation_of_a_fronto_parallel_plane_shifts_the_image():
    # plane at z=2 m, camera moves right by 2 m * 4 px / f -> image shifts left by exactly 4 px
    rng = np.random.default_rng(1)
    h, w, f, z = 32, 48, 40.0, 2.0
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = np.full((h, w), z, np.float32)
    T = np.eye(4)
    T[0, 3] = -4 * z / f  # target-from-source: camera moved +x, points move -x in its frame
    out, cov = forward_splat(rgb, depth, _K(w, h, f), T, footprint=1)
    np.testing.assert_array_equal(out[:, : w - 4], rgb[:, 4:])
    assert not cov[:, w - 4:].any()  # disoccluded strip stays a hole (black)
    assert (out[:, w - 4:] == 0).all()


def test_zbuffer_keeps_the_nearest_surface():
    h, w, f = 20, 20, 20.0
    rgb = np.zeros((h, w, 3), np.uint8)
    depth = np.full((h, w), 4.0, np.float32)
    rgb[:] = (0, 0, 255)  # far background: blue
    rgb[8:12, 8:12] = (255, 0, 0)  # near square: red at 1 m
    depth[8:12, 8:12] = 1.0
    T = np.eye(4)
    T[0, 3] = -0.1  # small sideways move: the near square moves more than the background
    out, cov = forward_splat(rgb, depth, _K(w, h, f), T)
    reds = (out[..., 0] == 255).sum()
    assert reds >= 16  # the near square is never hidden by the farther background
    assert cov.sum() > 0.8 * h * w
