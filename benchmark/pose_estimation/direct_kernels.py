"""Compiled inner loops of the direct estimator (numba, no fast-math; cached on disk).

Each kernel does in one pass over the pixels what ``direct_estimator`` did with a chain of numpy
array operations, with the SAME float64 operations in the SAME order (no fused multiply-add: numba
compiles without fast-math, so ``a * b + c`` rounds twice; no reassociation; no reductions), so
the poses are bit-identical to the numpy formulation. ``tests/benchmark/test_direct_kernels.py``
keeps that formulation and compares the two on random inputs, bit for bit.

Reductions (sums of costs, the Gauss-Newton system) stay in numpy, whose summation order the
estimator's results were measured with.
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def _bilinear_into(stack, u, v, out, inside):
    """Bilinear samples of (H, W, C) ``stack`` at pixel coordinates (u, v) (centres at +0.5) into
    ``out`` (M, C); ``inside`` (M,) bool: the sample lies inside the image (clamped otherwise)."""
    H, W, C = stack.shape
    xmax, ymax = W - 1.001, H - 1.001
    for k in range(u.shape[0]):
        x = u[k] - 0.5
        y = v[k] - 0.5
        inside[k] = (x >= 0) & (y >= 0) & (x <= xmax) & (y <= ymax)
        if not (x >= 0.0):  # also NaN
            x = 0.0
        if x > xmax:
            x = xmax
        if not (y >= 0.0):
            y = 0.0
        if y > ymax:
            y = ymax
        x0, y0 = np.int64(x), np.int64(y)
        fx, fy = x - x0, y - y0
        for c in range(C):
            a, b = stack[y0, x0, c], stack[y0, x0 + 1, c]
            cc, d = stack[y0 + 1, x0, c], stack[y0 + 1, x0 + 1, c]
            top = a + (b - a) * fx
            bot = cc + (d - cc) * fx
            out[k, c] = top + (bot - top) * fy


def sample(stack: np.ndarray, u: np.ndarray, v: np.ndarray):
    """(M, C) bilinear samples of ``stack`` at (u, v) and (M,) bool inside (``_bilinear_into``)."""
    out = np.empty((u.shape[0], stack.shape[2]))
    inside = np.empty(u.shape[0], dtype=np.bool_)
    _bilinear_into(stack, np.ascontiguousarray(u, dtype=np.float64), np.ascontiguousarray(v, dtype=np.float64),
                   out, inside)
    return out, inside


@nb.njit(cache=True, nogil=True)
def _project_into(T, fx, fy, cx, cy, x0, x1, rho, Y0, Y1, Y2, front, iz, u, v):
    """Keyframe rays (x0, x1, 1) at inverse depth rho moved by T: Y = R x + t rho (scaled by rho),
    in front when Y2 > 1e-6, iz = 1 / Y2 (0 behind), pixel (u, v) = (fx Y0 iz + cx, fy Y1 iz + cy)."""
    for k in range(x0.shape[0]):
        a, b, r = x0[k], x1[k], rho[k]
        y0 = T[0, 0] * a + T[0, 1] * b + T[0, 2] + T[0, 3] * r
        y1 = T[1, 0] * a + T[1, 1] * b + T[1, 2] + T[1, 3] * r
        y2 = T[2, 0] * a + T[2, 1] * b + T[2, 2] + T[2, 3] * r
        f = y2 > 1e-6
        z = 1.0 / y2 if f else 0.0
        Y0[k], Y1[k], Y2[k], front[k], iz[k] = y0, y1, y2, f, z
        u[k] = fx * y0 * z + cx
        v[k] = fy * y1 * z + cy


def project(T: np.ndarray, K: np.ndarray, x0: np.ndarray, x1: np.ndarray, rho: np.ndarray):
    """(Y0, Y1, Y2, front, iz, u, v) of ``_project_into``."""
    n = x0.shape[0]
    Y0, Y1, Y2, iz, u, v = (np.empty(n) for _ in range(6))
    front = np.empty(n, dtype=np.bool_)
    _project_into(np.ascontiguousarray(T, dtype=np.float64), float(K[0, 0]), float(K[1, 1]), float(K[0, 2]),
                  float(K[1, 2]), np.ascontiguousarray(x0, dtype=np.float64),
                  np.ascontiguousarray(x1, dtype=np.float64), np.ascontiguousarray(rho, dtype=np.float64),
                  Y0, Y1, Y2, front, iz, u, v)
    return Y0, Y1, Y2, front, iz, u, v


@nb.njit(cache=True, nogil=True)
def _residuals_into(stack, hole, has_hole, fx, fy, Y0, Y1, Y2, front, iz, u, v, ref, rho, a0, a1, huber,
                    wv, frozen, has_frozen, need_J, r, ok, w, cterm, J):
    """Per keyframe pixel k of the photometric cost at a projection (``_project_into``'s outputs):
    residual r = I_t(u, v) - (a0 ref + a1), valid ok (in front, inside, not in a hole), Gauss-Newton
    weight w (Huber weight x ``wv``, 0 where not valid or, with ``frozen``, not in the support), cost
    term ``cterm`` (Huber cost x wv; with ``frozen``: the frozen cost where a support pixel is not
    valid, 0 outside the support) and, with ``need_J``, the Jacobian row J (8) over
    (v, w, brightness): d r / d Y via the projection, d Y / d xi = (rho v, w x Y)."""
    H, W, _ = stack.shape
    xmax, ymax = W - 1.001, H - 1.001
    for k in range(u.shape[0]):
        x = u[k] - 0.5
        y = v[k] - 0.5
        inside = (x >= 0) & (y >= 0) & (x <= xmax) & (y <= ymax)
        if not (x >= 0.0):
            x = 0.0
        if x > xmax:
            x = xmax
        if not (y >= 0.0):
            y = 0.0
        if y > ymax:
            y = ymax
        x0, y0 = np.int64(x), np.int64(y)
        fxx, fyy = x - x0, y - y0
        s0 = s1 = s2 = 0.0
        for c in range(3):
            a, b = stack[y0, x0, c], stack[y0, x0 + 1, c]
            cc, d = stack[y0 + 1, x0, c], stack[y0 + 1, x0 + 1, c]
            top = a + (b - a) * fxx
            bot = cc + (d - cc) * fxx
            val = top + (bot - top) * fyy
            if c == 0:
                s0 = val
            elif c == 1:
                s1 = val
            else:
                s2 = val
        good = front[k] & inside
        if has_hole:
            ix = np.int64(np.floor(u[k]))
            iy = np.int64(np.floor(v[k]))
            ix = 0 if ix < 0 else (W - 1 if ix > W - 1 else ix)
            iy = 0 if iy < 0 else (H - 1 if iy > H - 1 else iy)
            if hole[iy, ix]:
                good = False
        ok[k] = good
        rk = s0 - (a0 * ref[k] + a1)
        r[k] = rk
        ak = abs(rk)
        if ak <= huber:
            hw = 1.0
            hub = 0.5 * rk * rk
        else:
            hw = huber / max(ak, 1e-12)
            hub = huber * (ak - 0.5 * huber)
        if has_frozen:
            sup = not np.isnan(frozen[k])
            w[k] = hw * wv[k] if (good and sup) else 0.0
            cterm[k] = ((hub if good else frozen[k]) if sup else 0.0) * wv[k]
        else:
            w[k] = hw * wv[k] if good else 0.0
            cterm[k] = (hub if good else 0.0) * wv[k]
        if need_J:
            z = iz[k]
            dY0 = s1 * fx * z
            dY1 = s2 * fy * z
            dY2 = -(s1 * fx * Y0[k] + s2 * fy * Y1[k]) * z * z
            rh = rho[k]
            J[k, 0] = dY0 * rh
            J[k, 1] = dY1 * rh
            J[k, 2] = dY2 * rh
            J[k, 3] = dY1 * (-Y2[k]) + dY2 * Y1[k]
            J[k, 4] = dY0 * Y2[k] + dY2 * (-Y0[k])
            J[k, 5] = dY0 * (-Y1[k]) + dY1 * Y0[k]
            J[k, 6] = -ref[k]
            J[k, 7] = -1.0


def residuals(stack, hole, has_hole: bool, K, proj, ref, rho, ab, huber: float, wdepth, frozen, need_J: bool):
    """(r, ok, w, cterm, J or None) of ``_residuals_into`` at ``proj`` = ``project(...)``'s outputs;
    ``wdepth`` a scalar or per-pixel weights, ``frozen`` None or per-pixel (NaN = not in the support)."""
    Y0, Y1, Y2, front, iz, u, v = proj
    n = u.shape[0]
    wv = np.full(n, float(wdepth)) if np.ndim(wdepth) == 0 else np.ascontiguousarray(wdepth, dtype=np.float64)
    r, w, cterm = np.empty(n), np.empty(n), np.empty(n)
    ok = np.empty(n, dtype=np.bool_)
    J = np.empty((n, 8)) if need_J else np.empty((0, 8))
    has_frozen = frozen is not None
    fr = np.ascontiguousarray(frozen, dtype=np.float64) if has_frozen else np.empty(0)
    _residuals_into(stack, hole, bool(has_hole), float(K[0, 0]), float(K[1, 1]), Y0, Y1, Y2, front, iz, u, v,
                    np.ascontiguousarray(ref, dtype=np.float64), np.ascontiguousarray(rho, dtype=np.float64),
                    float(ab[0]), float(ab[1]), float(huber), wv, fr, has_frozen, bool(need_J), r, ok, w, cterm, J)
    return r, ok, w, cterm, (J if need_J else None)
