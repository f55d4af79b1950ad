"""Compiled per-pixel loops of the embedded renderer (numba, ``nogil``; cached on disk).

Each kernel does in one pass over the pixels what the renderer once did with a chain of numpy
array operations, with the SAME float32 operations in the SAME order, so the images are
bit-identical to the numpy formulation (``tests/datagen/render_reference.py`` keeps it; the test
``tests/datagen/test_render_fast_path.py`` compares the two on the same ray-cast hits):

- no fused multiply-add (numba compiles without fast-math, so ``a * b + c`` rounds twice), every
  constant a float32, no reassociation;
- ``exp`` (fog) is not computed here: numpy's float32 ``exp`` is called on whole arrays as before.

The kernels work on flat pixel ranges ``[lo, hi)`` so the renderer can run them on row chunks in
its thread pool (they release the GIL); each pixel's result depends on that pixel only, so the
image does not depend on the number of threads.
"""
from __future__ import annotations

import numba as nb
import numpy as np

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_HALF = np.float32(0.5)
_SKY_BINS = np.float32(512.0)     # sky LUT: 1025 bins over ray elevation dz in [-1, 1]
_GLOW_BINS = np.float32(2047.5)   # glow LUT: 4096 bins over cos(angle to the sun) in [-1, 1]
_EDGE_REL = np.float32(0.02)      # stride-2 shadows: depth step of more than 2 % + 2 cm
_EDGE_ABS = np.float32(0.02)
_MAX_OUT = np.float32(255.49)


@nb.njit(nogil=True, cache=True)
def primary_rays(xs, ys, R, origin, rays, row_lo, row_hi):
    """Rays of image rows [row_lo, row_hi) into ``rays`` (H*W, 6) float32: the camera origin and
    the world direction x * R[:, 0] + (y * R[:, 1] + R[:, 2]) (camera z = 1)."""
    w = xs.shape[0]
    for r in range(row_lo, row_hi):
        b0 = ys[r] * R[0, 1] + R[0, 2]
        b1 = ys[r] * R[1, 1] + R[1, 2]
        b2 = ys[r] * R[2, 1] + R[2, 2]
        base = r * w
        for x in range(w):
            i = base + x
            rays[i, 0] = origin[0]
            rays[i, 1] = origin[1]
            rays[i, 2] = origin[2]
            rays[i, 3] = xs[x] * R[0, 0] + b0
            rays[i, 4] = xs[x] * R[1, 0] + b1
            rays[i, 5] = xs[x] * R[2, 0] + b2


@nb.njit(nogil=True, cache=True)
def shade_surface(lo, hi, t, prim, bary, nt, tbl, amb, sun, tri_color, has_color, foot, dlen, tex,
                  mip_offsets, tex_size, mip_levels, rays, sky_lut, glow_lut, L, outdoor,
                  has_fog, neg_density, albedo, light0, light1, th, fog_arg):
    """Albedo (texture x vertex colour, or the sky for misses), the ambient and sun terms, the
    hit distance (0 for misses) and, with fog, the exponent -density * distance * |d| (numpy's
    ``exp`` of it is the fog factor) of pixels [lo, hi).

    tbl (Nt + 1, 8): uv0 and the uv edges in level-0 texels, 1/tile, material (row Nt: misses);
    amb / sun (Nt + 1,): the frame's per-triangle ambient multiplier and sun term."""
    for i in range(lo, hi):
        p = np.int64(prim[i])
        if p >= nt:
            # miss: sky gradient by the ray's elevation, sun glow outdoors
            inv = _F1 / dlen[i]
            dz = rays[i, 5] * inv
            k = np.int32((dz + _F1) * _SKY_BINS)
            a0 = sky_lut[k, 0]
            a1 = sky_lut[k, 1]
            a2 = sky_lut[k, 2]
            if outdoor:
                cosang = (rays[i, 3] * L[0] + rays[i, 4] * L[1] + rays[i, 5] * L[2]) * inv
                g = glow_lut[np.int32((cosang + _F1) * _GLOW_BINS)]
                a0 += g
                a1 += g
                a2 += g
            albedo[i, 0] = a0
            albedo[i, 1] = a1
            albedo[i, 2] = a2
            light0[i] = _F1
            light1[i] = _F0
            th[i] = _F0
            if has_fog:
                fog_arg[i] = neg_density * _F0 * dlen[i]
            continue
        b1 = bary[i, 0]
        b2 = bary[i, 1]
        uu = tbl[p, 1] * b1 + tbl[p, 0] + tbl[p, 2] * b2   # level-0 texel coordinates
        vv = tbl[p, 4] * b1 + tbl[p, 3] + tbl[p, 5] * b2
        tt = t[i]
        th[i] = tt
        if has_fog:
            fog_arg[i] = neg_density * tt * dlen[i]
        # mip level = clip(floor(log2(footprint in texels)), 0, levels - 1), as frexp's exponent - 1
        fp = tt * foot[i] * tbl[p, 6]
        lvl = 0
        edge = np.float32(2.0)
        while lvl < mip_levels - 1 and fp >= edge:
            lvl += 1
            edge = edge * np.float32(2.0)
        size = np.int32(tex_size) >> lvl
        mask = size - 1
        iu = (np.int32(np.floor(uu)) >> lvl) & mask   # floor division by 2^lvl
        iv = (np.int32(np.floor(vv)) >> lvl) & mask
        flat = ((np.int32(tbl[p, 7]) * size + iv) * size + iu) + mip_offsets[lvl]
        a0 = tex[flat, 0]
        a1 = tex[flat, 1]
        a2 = tex[flat, 2]
        if has_color:
            b0 = _F1 - b1 - b2
            a0 *= tri_color[p, 0] * b0 + tri_color[p, 3] * b1 + tri_color[p, 6] * b2
            a1 *= tri_color[p, 1] * b0 + tri_color[p, 4] * b1 + tri_color[p, 7] * b2
            a2 *= tri_color[p, 2] * b0 + tri_color[p, 5] * b1 + tri_color[p, 8] * b2
        albedo[i, 0] = a0
        albedo[i, 1] = a1
        albedo[i, 2] = a2
        light0[i] = amb[p]
        light1[i] = sun[p]


@nb.njit(nogil=True, cache=True)
def shadow_rays(rays, th, light1, prim, nt, tri_obj, width, row_lo, row_hi, stride, L, out_rays, src):
    """Occlusion rays toward the sun for the pixels of rows [row_lo, row_hi) that have a sun term
    (the others need none); with stride 2, row_lo must be even.

    Rays go to ``out_rays`` from row ``row_lo * width`` on; ``src[i]``: the row of ``out_rays``
    whose answer pixel i uses (-1: no sun term). The ray starts at the hit point (camera origin
    + direction * t). Stride 1: one ray per lit pixel. Stride 2: one ray per 2x2 block, from its
    representative (even row, even column), shared by the block's lit pixels, except that a pixel
    whose object differs from the representative's, whose depth differs by more than 2 % + 2 cm,
    or whose representative has no sun term casts its own ray. Returns the number of rays."""
    base = row_lo * width
    n = 0
    for y in range(row_lo, row_hi):
        for x in range(width):
            i = y * width + x
            if not light1[i] > _F0:
                src[i] = -1
                continue
            own = True
            if stride == 2:
                r = (y - (y & 1)) * width + (x - (x & 1))
                if r != i and light1[r] > _F0:
                    pi = np.int64(prim[i])
                    pr = np.int64(prim[r])
                    oi = tri_obj[min(pi, nt)]
                    orr = tri_obj[min(pr, nt)]
                    if oi == orr and not abs(th[i] - th[r]) > _EDGE_REL * th[i] + _EDGE_ABS:
                        src[i] = src[r]
                        own = False
            if own:
                tt = th[i]
                k = base + n
                out_rays[k, 0] = rays[i, 0] + rays[i, 3] * tt
                out_rays[k, 1] = rays[i, 1] + rays[i, 4] * tt
                out_rays[k, 2] = rays[i, 2] + rays[i, 5] * tt
                out_rays[k, 3] = L[0]
                out_rays[k, 4] = L[1]
                out_rays[k, 5] = L[2]
                src[i] = k
                n += 1
    return n


@nb.njit(nogil=True, cache=True)
def compose(lo, hi, albedo, light0, light1, src, occluded, use_shadows, sun_c, fog, has_fog, fog_c, out):
    """Final colour of pixels [lo, hi): albedo * (ambient + sun * visible * sun colour), then
    fog (``fog`` holds exp(-density * distance) when ``has_fog``), +0.5, clamp, stored into
    ``out`` (uint8: truncated, as numpy's cast; a float32 ``out`` keeps the values, for tests)."""
    for i in range(lo, hi):
        s = light1[i]
        if use_shadows:
            k = src[i]
            vis = _F1
            if k >= 0 and occluded[k]:
                vis = _F0
            s = s * vis
        l0 = light0[i]
        c0 = albedo[i, 0] * (l0 + s * sun_c[0])
        c1 = albedo[i, 1] * (l0 + s * sun_c[1])
        c2 = albedo[i, 2] * (l0 + s * sun_c[2])
        if has_fog:
            f = fog[i]
            g = _F1 - f
            c0 = c0 * f + (g * fog_c[0] + _HALF)
            c1 = c1 * f + (g * fog_c[1] + _HALF)
            c2 = c2 * f + (g * fog_c[2] + _HALF)
        else:
            c0 = c0 + _HALF
            c1 = c1 + _HALF
            c2 = c2 + _HALF
        out[i, 0] = min(c0, _MAX_OUT)
        out[i, 1] = min(c1, _MAX_OUT)
        out[i, 2] = min(c2, _MAX_OUT)
