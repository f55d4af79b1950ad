"""The direct estimator's compiled loops equal its numpy formulation bit for bit (random inputs:
points in front and behind, leaving the image, holes, frozen support, scalar and per-pixel weights)."""
import numpy as np
import pytest

from benchmark.pose_estimation import direct_kernels


# ------------------------------------------------------------------ numpy formulation (reference)

def _project_ref(T, K, x0, x1, rho):
    R, t = T[:3, :3], T[:3, 3]
    Y0 = R[0, 0] * x0 + R[0, 1] * x1 + R[0, 2] + t[0] * rho
    Y1 = R[1, 0] * x0 + R[1, 1] * x1 + R[1, 2] + t[1] * rho
    Y2 = R[2, 0] * x0 + R[2, 1] * x1 + R[2, 2] + t[2] * rho
    front = Y2 > 1e-6
    iz = np.where(front, 1.0 / np.where(front, Y2, 1.0), 0.0)
    return Y0, Y1, Y2, front, iz, K[0, 0] * Y0 * iz + K[0, 2], K[1, 1] * Y1 * iz + K[1, 2]


def _sample_ref(stack, u, v):
    H, W, C = stack.shape
    x, y = u - 0.5, v - 0.5
    ok = (x >= 0) & (y >= 0) & (x <= W - 1.001) & (y <= H - 1.001)
    x = np.clip(x, 0.0, W - 1.001)
    y = np.clip(y, 0.0, H - 1.001)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    flat = stack.reshape(H * W, C)
    i = y0 * W + x0
    a, b, c, d = flat[i], flat[i + 1], flat[i + W], flat[i + W + 1]
    top = a + (b - a) * fx
    bot = c + (d - c) * fx
    return top + (bot - top) * fy, ok


def _nearest_ref(mask, u, v):
    H, W = mask.shape
    ix = np.clip(np.floor(u).astype(np.int64), 0, W - 1)
    iy = np.clip(np.floor(v).astype(np.int64), 0, H - 1)
    return mask[iy, ix]


def _residuals_ref(stack, hole, has_hole, K, proj, ref, rho, ab, huber, wdepth, frozen):
    Y0, Y1, Y2, front, iz, u, v = proj
    fx, fy = K[0, 0], K[1, 1]
    s, inside = _sample_ref(stack, u, v)
    ok = front & inside
    if has_hole:
        ok &= ~_nearest_ref(hole, u, v)
    r = s[:, 0] - (ab[0] * ref + ab[1])
    gu, gv = s[:, 1], s[:, 2]
    dY0, dY1 = gu * fx * iz, gv * fy * iz
    dY2 = -(gu * fx * Y0 + gv * fy * Y1) * iz * iz
    a = np.abs(r)
    hw = np.where(a <= huber, 1.0, huber / np.maximum(a, 1e-12))
    hub = np.where(a <= huber, 0.5 * r * r, huber * (a - 0.5 * huber))
    if frozen is None:
        w = np.where(ok, hw * wdepth, 0.0)
        cterm = np.where(ok, hub, 0.0) * wdepth
    else:
        sup = ~np.isnan(frozen)
        w = np.where(ok & sup, hw * wdepth, 0.0)
        cterm = np.where(sup, np.where(ok, hub, np.nan_to_num(frozen)), 0.0) * wdepth
    J = np.empty((len(r), 8))
    J[:, 0], J[:, 1], J[:, 2] = dY0 * rho, dY1 * rho, dY2 * rho
    J[:, 3] = dY1 * (-Y2) + dY2 * Y1
    J[:, 4] = dY0 * Y2 + dY2 * (-Y0)
    J[:, 5] = dY0 * (-Y1) + dY1 * Y0
    J[:, 6], J[:, 7] = -ref, -1.0
    return r, ok, w, cterm, J


# ------------------------------------------------------------------ inputs

def _inputs(seed, n=4000, H=37, W=53):
    rng = np.random.default_rng(seed)
    stack = rng.normal(100.0, 40.0, (H, W, 3))
    hole = rng.random((H, W)) < 0.1
    K = np.array([[40.3, 0, W / 2 + 0.1], [0, 41.7, H / 2 - 0.2], [0, 0, 1]])
    w = rng.normal(0, 0.05, 3)
    th = np.linalg.norm(w)
    k = w / th
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    T = np.eye(4)
    T[:3, :3] = np.eye(3) + np.sin(th) * Kx + (1 - np.cos(th)) * Kx @ Kx
    T[:3, 3] = rng.normal(0, 0.3, 3)
    T[2, 3] = -0.6                       # points with rho > ~1.7 end up behind the camera
    x0 = rng.uniform(-1.2, 1.2, n)       # some rays leave the image
    x1 = rng.uniform(-0.9, 0.9, n)
    rho = rng.uniform(0.0, 3.0, n)       # large rho with t_z < 0 puts points behind the camera
    rho[:50] = 0.0                       # points at infinity
    ref = rng.uniform(0, 255, n)
    frozen = np.where(rng.random(n) < 0.3, np.nan, rng.uniform(0, 50, n))
    return stack, hole, K, T, x0, x1, rho, ref, frozen, rng.uniform(0, 1, n)


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_project_and_sample_bit_identical(seed):
    stack, hole, K, T, x0, x1, rho, *_ = _inputs(seed)
    got, want = direct_kernels.project(T, K, x0, x1, rho), _project_ref(T, K, x0, x1, rho)
    assert not want[3].all(), "some points must be behind the camera"
    for g, w in zip(got, want):
        assert _same(g, w)
    u, v = want[5], want[6]
    s, inside = direct_kernels.sample(stack, u, v)
    s_ref, inside_ref = _sample_ref(stack, u, v)
    assert 0 < inside_ref.sum() < len(u), "some samples must leave the image"
    assert _same(s, s_ref) and _same(inside, inside_ref)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("has_hole", [False, True])
@pytest.mark.parametrize("frozen_on", [False, True])
@pytest.mark.parametrize("per_pixel_w", [False, True])
def test_residuals_bit_identical(seed, has_hole, frozen_on, per_pixel_w):
    stack, hole, K, T, x0, x1, rho, ref, frozen, wpix = _inputs(seed)
    proj = _project_ref(T, K, x0, x1, rho)
    wdepth = wpix if per_pixel_w else 1.0
    fr = frozen if frozen_on else None
    ab = np.array([1.07, -3.2])
    got = direct_kernels.residuals(stack, hole, has_hole, K, proj, ref, rho, ab, 6.0, wdepth, fr, True)
    want = _residuals_ref(stack, hole, has_hole, K, proj, ref, rho, ab, 6.0, wdepth, fr)
    for g, w in zip(got, want):
        assert _same(np.asarray(g), np.asarray(w))
    assert (np.abs(want[0]) > 6.0).any() and (np.abs(want[0]) <= 6.0).any(), "both Huber branches"
    r, ok, w, cterm, J = direct_kernels.residuals(stack, hole, has_hole, K, proj, ref, rho, ab, 6.0, wdepth, fr,
                                                  False)
    assert J is None and _same(cterm, want[3]) and _same(ok, want[1])
