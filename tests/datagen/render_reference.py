"""The embedded renderer's shading as it was written before the compiled kernels: whole-array
numpy operations (commit ba4fb0d, ``datagen/render/renderer.py``), kept as the reference the
fast path must match bit for bit.

:func:`reference_render` renders with a :class:`datagen.render.renderer.Renderer`'s own scene
tables and ray-casting scenes (the same BVH, so the same ray-cast hits on this machine) but
builds rays, shades, selects shadow rays and composes with the original numpy code, in one
chunk. Only the test ``test_render_fast_path.py`` uses it.
"""
from __future__ import annotations

import numpy as np

from datagen.backends.base import Frame
from datagen.render.renderer import _MIP_LEVELS, _o3d
from datagen.render.textures import TEX_SIZE


def _camera(K: np.ndarray, width: int, height: int):
    xs = (np.arange(width, dtype=np.float64) + 0.5 - K[0, 2]) / K[0, 0]
    ys = (np.arange(height, dtype=np.float64) + 0.5 - K[1, 2]) / K[1, 1]
    dl = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2 + 1.0).reshape(-1)
    return (xs.astype(np.float32), ys.astype(np.float32), dl.astype(np.float32),
            (dl / K[0, 0] * TEX_SIZE).astype(np.float32), np.empty((width * height, 6), np.float32))


def _frame_table(r, origin: np.ndarray):
    env = r.scene.environment
    nt = r._nt
    side = np.einsum("ij,ij->i", r._tri_n, origin[None, :].astype(np.float64) - r._tri_p0)
    n = np.where((side < 0)[:, None], -r._tri_n, r._tri_n).astype(np.float32)
    ndl = n @ r._L
    tilt = np.float32(env.ambient_tilt)
    ft = np.zeros((nt + 1, 10), np.float32)
    ft[:, :8] = r._tbl[:, :8]
    ft[:nt, 8] = np.float32(env.ambient) * ((1 - tilt) + tilt * n[:, 2])
    ft[:nt, 9] = np.maximum(ndl, 0) * np.float32(env.sun_strength)
    emis = r._tri_emis
    ft[:nt][emis, 8] = 1.0
    ft[:nt][emis, 9] = 0.0
    normals = np.zeros((nt + 1, 3), np.float32)
    normals[:nt] = n
    return ft, normals


def reference_render(r, c2w, K, width: int, height: int, kinds=("rgb", "depth"), shadows: bool = True) -> Frame:
    """What ``r.render(c2w, K, width, height, kinds, shadows)`` returned before the kernels."""
    kinds = tuple(kinds)
    c2w = np.asarray(c2w, np.float64)
    K = np.asarray(K, np.float64)
    xs, ys, dlen, foot, rays = _camera(K, width, height)
    origin = c2w[:3, 3].astype(np.float32)
    R = c2w[:3, :3].astype(np.float32)
    rv = rays.reshape(height, width, 6)
    rv[:, :, :3] = origin
    for c in range(3):
        np.add((xs * R[c, 0])[None, :], (ys * R[c, 1] + R[c, 2])[:, None], out=rv[:, :, 3 + c])
    ans = r._rs.cast_rays(_o3d(rays), nthreads=r.nthreads)
    t = ans["t_hit"].numpy()
    prim = np.minimum(ans["primitive_ids"].numpy(), np.uint32(r._nt)).astype(np.int64)
    frame = Frame(c2w=c2w.copy(), K=K.copy(), meta={"width": width, "height": height})
    if "depth" in kinds:
        frame.depth = t.reshape(height, width).copy()
    if "mask" in kinds:
        frame.mask = np.take(r._tri_obj, prim).reshape(height, width)
    if "normal" in kinds or "rgb" in kinds:
        ft, normals = _frame_table(r, c2w[:3, 3])
        if "normal" in kinds:
            frame.normal = np.take(normals, prim, axis=0).reshape(height, width, 3)
        if "rgb" in kinds:
            frame.rgb = _shade(r, t, prim, ft, rays, dlen, foot, shadows, ans, width, height).reshape(height, width, 3)
    return frame


def _occlusion(r, rays, prim, th, sun, width: int, height: int) -> np.ndarray:
    def test(x):
        return r._shadow_rs.test_occlusions(_o3d(x), tnear=2e-3, nthreads=r.nthreads).numpy()

    stride = r.shadow_stride or (2 if width * height >= 200_000 else 1)
    if stride == 1 or width < 2 or height < 2:
        return test(rays)

    def up(a):  # block representative's value for every pixel
        return np.repeat(np.repeat(a[::2, ::2], 2, 0), 2, 1)[:height, :width]

    rv = rays.reshape(height, width, 6)
    lo = test(np.ascontiguousarray(rv[::2, ::2])).reshape((height + 1) // 2, (width + 1) // 2)
    occ = np.ascontiguousarray(np.repeat(np.repeat(lo, 2, 0), 2, 1)[:height, :width]).reshape(-1)
    obj = np.take(r._tri_obj, prim).reshape(height, width)
    t2 = th.reshape(height, width)
    s2 = sun.reshape(height, width)
    bad = (obj != up(obj)) | (np.abs(t2 - up(t2)) > np.float32(0.02) * t2 + np.float32(0.02)) | (up(s2) <= 0)
    bad &= s2 > 0
    idx = np.flatnonzero(bad)
    if len(idx):
        occ[idx] = test(np.take(rays, idx, axis=0))
    return occ


def _shade(r, t, prim, ft, rays, dlen, foot, shadows, ans, width, height, keep: dict | None = None) -> np.ndarray:
    """The uint8 colours; `keep` (a dict) receives the float intermediates (albedo, light, th, col)."""
    env = r.scene.environment
    n_pix = len(t)
    ftT = np.ascontiguousarray(ft.T)
    baryT = np.ascontiguousarray(ans["primitive_uvs"].numpy().T)
    albedo = np.empty((n_pix, 3), np.float32)
    light = np.empty((2, n_pix), np.float32)
    th = np.empty(n_pix, np.float32)
    out = np.empty((n_pix, 3), np.uint8)
    do_shadows = shadows and r._shadow_rs is not None
    fog_c = np.asarray(env.fog_color, np.float32) * 255
    sun_c = np.asarray(env.sun_color, np.float32)
    L = r._L
    far_z = np.float32(float(r.scene.vertices[:, 2].max()) + 1000.0)
    sl = slice(0, n_pix)

    p = prim[sl]
    tb = np.take(ftT, p, axis=1)  # (10, n)
    hit = p < r._nt
    b1, b2 = baryT[0, sl], baryT[1, sl]
    uu = tb[1] * b1  # level-0 texel coordinates
    uu += tb[0]
    uu += tb[2] * b2
    vv = tb[4] * b1
    vv += tb[3]
    vv += tb[5] * b2
    tt = np.where(hit, t[sl], np.float32(0.0))
    th[sl] = tt
    fp = tt * foot[sl]
    fp *= tb[6]
    _, e = np.frexp(fp)
    lvl = np.clip(e - 1, 0, _MIP_LEVELS - 1).astype(np.int32)
    size = np.right_shift(np.int32(TEX_SIZE), lvl)
    mask = size - 1
    iu = np.right_shift(np.floor(uu).astype(np.int32), lvl) & mask
    iv = np.right_shift(np.floor(vv).astype(np.int32), lvl) & mask
    flat = tb[7].astype(np.int32) * size
    flat += iv
    flat *= size
    flat += iu
    flat += np.take(r._mip_offsets32, lvl)
    a = albedo[sl]
    np.take(r._tex, flat, axis=0, out=a)
    if r._tri_color is not None:
        cc = np.take(r._tri_color, p, axis=0)
        a *= cc[:, 0:3] * (1 - b1 - b2)[:, None] + cc[:, 3:6] * b1[:, None] + cc[:, 6:9] * b2[:, None]
    light[:, sl] = tb[8:10]
    miss = np.flatnonzero(~hit)
    if len(miss):
        rT = rays[sl].T
        inv = 1.0 / np.take(dlen[sl], miss)
        dz = np.take(rT[5], miss) * inv
        sky = np.take(r._sky_lut, ((dz + 1.0) * 512.0).astype(np.int32), axis=0)
        if not env.indoor:
            cosang = (np.take(rT[3], miss) * L[0] + np.take(rT[4], miss) * L[1]
                      + np.take(rT[5], miss) * L[2]) * inv
            sky += np.take(r._glow_lut, ((cosang + 1.0) * 2047.5).astype(np.int32))[:, None]
        albedo[sl][miss] = sky
        light[0, sl][miss] = 1.0
        light[1, sl][miss] = 0.0
    if do_shadows:
        rT = rays[sl].T
        for k in range(3):
            rT[k] += rT[k + 3] * tt
        if r._L[2] > 0.05:
            rT[2] = np.where(tb[9] > 0, rT[2], far_z)
        rays[sl, 3:] = L

    vis = None
    if do_shadows:
        occ = _occlusion(r, rays, prim, th, light[1], width, height)
        vis = np.logical_not(occ).astype(np.float32)

    sun_amt = light[1, sl] if vis is None else light[1, sl] * vis[sl]
    col = albedo[sl] * (light[0, sl][:, None] + sun_amt[:, None] * sun_c)
    if env.fog_density > 0:
        f = np.exp(np.float32(-env.fog_density) * th[sl] * dlen[sl])
        col *= f[:, None]
        col += (1 - f)[:, None] * fog_c + np.float32(0.5)
    else:
        col += np.float32(0.5)
    np.minimum(col, np.float32(255.49), out=col)
    out[sl] = col
    if keep is not None:
        keep.update(albedo=albedo, light=light, th=th, col=col)
    return out
