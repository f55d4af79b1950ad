"""The embedded renderer: Open3D ``RaycastingScene`` (Embree, CPU) plus numpy shading.

Per frame it casts one primary ray per pixel (pixel centres at integer + 0.5, rays built from K
and the camera-to-world pose, OpenCV camera axes) and returns a :class:`datagen.backends.base.Frame`:

- depth:  PLANAR z-depth in metres (float32): the primary ray direction in camera coordinates is
  (x, y, 1), so the hit parameter t equals the z-depth exactly; ``inf`` where nothing is hit.
- normal: unit world-frame geometric normal of the hit triangle, turned to face the camera;
  zeros where nothing is hit.
- mask:   int32 index into ``scene.objects``; -1 where nothing is hit.
- rgb:    uint8 sRGB. colour = albedo * (ambient(n) + sun * max(n.L, 0) * visible) for lit
  materials, albedo for emissive ones; then distance fog; misses show the sky gradient.
  Albedo is a lookup into per-material texture pyramids made once at load
  (:mod:`datagen.render.textures`) at the triangle's interpolated UV; the mip level follows the
  pixel footprint so distant textures do not alias. Lighting is flat (per triangle).
  ``visible`` comes from occlusion rays from the hit points toward the sun (pixels with no sun
  term start their ray far above the scene, so it costs nothing); on images of >= 200k pixels
  one ray per 2x2 block serves the block unless a pixel's object, depth or sun term differs
  from the block's, in which case it casts its own (``shadow_stride``); indoors the key
  light's shadows come from the furniture only (walls and ceiling do not block it). No
  randomness at render time: the same pose renders identically, whatever the thread count.

Speed: Embree calls use all cores (``nthreads=0``); the numpy shading runs on row chunks in a
small shared thread pool. One ``Renderer`` renders one frame at a time (a lock guards the
reused ray buffers).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import numpy as np
import open3d as o3d

from datagen.backends.base import CAPTURE_KINDS, Frame
from datagen.render.textures import TEX_SIZE, make_texture
from datagen.scenes.scene import Scene

_MIP_LEVELS = 6  # 128 .. 4 texels


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _shared_pool(n: int) -> ThreadPoolExecutor:
    """One process-wide pool per size (renderers are many; threads should not multiply)."""
    with _POOLS_LOCK:
        if n not in _POOLS:
            _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix="relic-render")
        return _POOLS[n]


def _o3d(a: np.ndarray) -> o3d.core.Tensor:
    return o3d.core.Tensor.from_numpy(np.ascontiguousarray(a))


class Renderer:
    """Renders one :class:`Scene`. Build once per scene (textures and BVH are made here)."""

    def __init__(self, scene: Scene, nthreads: int = 0, threads: int | None = None):
        scene._need_geometry()
        self.scene = scene
        self.nthreads = int(nthreads)  # Embree threads per call (0 = all cores)
        # numpy shading threads (row chunks); default: the number of CPU cores, at most 4
        self.threads = int(threads) if threads else max(1, min(4, os.cpu_count() or 1))
        self._pool = _shared_pool(self.threads) if self.threads > 1 else None
        self._rs = o3d.t.geometry.RaycastingScene()
        self._rs.add_triangles(_o3d(scene.vertices), _o3d(scene.triangles.astype(np.uint32)))
        env = scene.environment
        self._shadow_rs = self._rs
        if scene.shadow_casters is not None:
            keep = np.isin(scene.tri_object, scene.shadow_casters)
            self._shadow_rs = None
            if keep.any():
                self._shadow_rs = o3d.t.geometry.RaycastingScene()
                self._shadow_rs.add_triangles(_o3d(scene.vertices),
                                              _o3d(scene.triangles[keep].astype(np.uint32)))
        # textures: one pyramid per material, all levels flattened into one (N, 3) table
        n_mat = len(scene.materials)
        levels = []
        base = np.stack([make_texture(m, TEX_SIZE) for m in scene.materials]) if n_mat else \
            np.zeros((1, TEX_SIZE, TEX_SIZE, 3), np.float32)
        cur = base
        for _ in range(_MIP_LEVELS):
            levels.append(cur)
            s = cur.shape[1] // 2
            cur = cur.reshape(cur.shape[0], s, 2, s, 2, 3).mean((2, 4))
        self._mip_offsets32 = np.cumsum([0] + [lv[:, :, :, 0].size for lv in levels])[:-1].astype(np.int32)
        # albedo texels scaled to 0..255 (the output scale) so shading needs no extra multiply
        self._tex = (np.concatenate([lv.reshape(-1, 3) for lv in levels]) * 255.0).astype(np.float32)
        inv_tile = np.array([1.0 / max(m.tile_m, 1e-6) for m in scene.materials] or [1.0], np.float32)
        emissive = np.array([m.emissive for m in scene.materials] or [False])
        # Per-triangle shading table, one gather per frame: uv0 and the two uv edge vectors in
        # level-0 texels (uv / tile_m * TEX_SIZE), then 1/tile (for the mip level) and the
        # material index. Row Nt is a dummy for misses.
        nt = len(scene.triangles)
        uvt = scene.tri_uv.astype(np.float32) * (inv_tile[scene.tri_material] * TEX_SIZE)[:, None, None]
        tbl = np.zeros((nt + 1, 8), np.float32)
        tbl[:nt, 0] = uvt[:, 0, 0]
        tbl[:nt, 1] = uvt[:, 1, 0] - uvt[:, 0, 0]
        tbl[:nt, 2] = uvt[:, 2, 0] - uvt[:, 0, 0]
        tbl[:nt, 3] = uvt[:, 0, 1]
        tbl[:nt, 4] = uvt[:, 1, 1] - uvt[:, 0, 1]
        tbl[:nt, 5] = uvt[:, 2, 1] - uvt[:, 0, 1]
        tbl[:nt, 6] = inv_tile[scene.tri_material]
        tbl[:nt, 7] = scene.tri_material
        self._tbl = tbl
        self._nt = nt
        v = scene.vertices.astype(np.float64)
        tri = scene.triangles
        nrm = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-30)
        self._tri_n = nrm  # (Nt, 3) float64 geometric normals (winding order)
        self._tri_p0 = v[tri[:, 0]]
        self._tri_emis = emissive[scene.tri_material]
        self._tri_obj = np.append(scene.tri_object, np.int32(-1)).astype(np.int32)
        self._tri_color = None
        if scene.tri_color is not None:
            self._tri_color = np.concatenate([scene.tri_color, np.ones((1, 9), np.float32)]).astype(np.float32)
        # a height above every triangle: shadow rays that need no test start there (sun_dir z > 0)
        self._far_z = np.float32(float(scene.vertices[:, 2].max()) + 1000.0)
        self._L = np.asarray(env.sun_dir, np.float32)
        self._L = self._L / np.linalg.norm(self._L)
        self._ray_cache: dict = {}
        self._lock = threading.Lock()
        # shadow-ray stride: None = 2 for images of >= 200k pixels, else 1 (see _occlusion)
        self.shadow_stride: int | None = None
        # sky colour (0..255) by ray elevation dz in [-1, 1] (1025 bins; below the horizon: fog
        # colour) and the sun's glow by cos(angle to the sun) in [-1, 1] (4096 bins)
        dz = np.linspace(-1.0, 1.0, 1025)
        up = np.clip(dz, 0.0, 1.0)[:, None] ** 0.6
        lut = np.asarray(env.sky_horizon) * (1 - up) + np.asarray(env.sky_top) * up
        lut[dz < 0] = env.fog_color
        self._sky_lut = (lut * 255.0).astype(np.float32)
        ca = np.linspace(-1.0, 1.0, 4096)
        glow = np.maximum(ca, 0.0) ** 48 * 90.0
        glow[ca > 0.9994] = 255.0
        self._glow_lut = glow.astype(np.float32)

    # ------------------------------------------------------------------
    def _camera(self, K: np.ndarray, width: int, height: int):
        """Cached per (size, K): camera-frame ray x (W,) and y (H,) coordinates at z = 1, the ray
        length |d| (N,), the mip footprint factor |d| / fx * TEX_SIZE (N,) and a ray buffer."""
        key = (width, height, K.tobytes())
        c = self._ray_cache.get(key)
        if c is None:
            xs = (np.arange(width, dtype=np.float64) + 0.5 - K[0, 2]) / K[0, 0]
            ys = (np.arange(height, dtype=np.float64) + 0.5 - K[1, 2]) / K[1, 1]
            dl = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2 + 1.0).reshape(-1)
            c = (xs.astype(np.float32), ys.astype(np.float32), dl.astype(np.float32),
                 (dl / K[0, 0] * TEX_SIZE).astype(np.float32), np.empty((width * height, 6), np.float32))
            if len(self._ray_cache) > 8:
                self._ray_cache.clear()
            self._ray_cache[key] = c
        return c

    def _frame_table(self, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame per-triangle tables (flat shading makes lighting a per-triangle quantity):

        shade (Nt + 1, 10) float32: the static uv/material table (8 columns), then the ambient
        multiplier ambient * ((1 - tilt) + tilt * n_z) (1 for emissive) and the sun term
        sun_strength * max(n.L, 0) (0 for emissive); the sun's colour multiplies it later.
        normals (Nt + 1, 3) float32: geometric normals turned toward the camera (row Nt zeros).
        """
        env = self.scene.environment
        nt = self._nt
        side = np.einsum("ij,ij->i", self._tri_n, origin[None, :].astype(np.float64) - self._tri_p0)
        n = np.where((side < 0)[:, None], -self._tri_n, self._tri_n).astype(np.float32)
        ndl = n @ self._L
        tilt = np.float32(env.ambient_tilt)
        ft = np.zeros((nt + 1, 10), np.float32)
        ft[:, :8] = self._tbl[:, :8]
        ft[:nt, 8] = np.float32(env.ambient) * ((1 - tilt) + tilt * n[:, 2])
        ft[:nt, 9] = np.maximum(ndl, 0) * np.float32(env.sun_strength)
        emis = self._tri_emis
        ft[:nt][emis, 8] = 1.0
        ft[:nt][emis, 9] = 0.0
        normals = np.zeros((nt + 1, 3), np.float32)
        normals[:nt] = n
        return ft, normals

    def render(self, c2w, K, width: int, height: int, kinds: Iterable[str] = ("rgb", "depth"),
               shadows: bool = True) -> Frame:
        """Render one view (see the module docstring). Thread-safe (one render at a time per
        Renderer: the ray buffers are reused)."""
        with self._lock:
            return self._render(c2w, K, width, height, kinds, shadows)

    def _render(self, c2w, K, width, height, kinds, shadows) -> Frame:
        kinds = tuple(kinds)
        bad = [k for k in kinds if k not in CAPTURE_KINDS]
        if bad:
            raise ValueError(f"unknown capture kind(s) {bad}; choose from {CAPTURE_KINDS}")
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"resolution must be positive, got {width}x{height}")
        c2w = np.asarray(c2w, np.float64)
        K = np.asarray(K, np.float64)
        xs, ys, dlen, foot, rays = self._camera(K, width, height)
        origin = c2w[:3, 3].astype(np.float32)
        R = c2w[:3, :3].astype(np.float32)
        # world ray directions, separable: d = x * R[:,0] + y * R[:,1] + R[:,2] (camera z = 1)
        rv = rays.reshape(height, width, 6)
        rv[:, :, :3] = origin
        for c in range(3):
            np.add((xs * R[c, 0])[None, :], (ys * R[c, 1] + R[c, 2])[:, None], out=rv[:, :, 3 + c])
        ans = self._rs.cast_rays(_o3d(rays), nthreads=self.nthreads)
        t = ans["t_hit"].numpy()
        # triangle index per pixel (int64: the fastest index type for np.take); misses -> dummy row Nt
        prim = np.minimum(ans["primitive_ids"].numpy(), np.uint32(self._nt)).astype(np.int64)
        frame = Frame(c2w=c2w.copy(), K=K.copy(), meta={"width": width, "height": height})
        if "depth" in kinds:
            frame.depth = t.reshape(height, width).copy()
        if "mask" in kinds:
            frame.mask = np.take(self._tri_obj, prim).reshape(height, width)
        if "normal" in kinds or "rgb" in kinds:
            ft, normals = self._frame_table(c2w[:3, 3])
            if "normal" in kinds:
                frame.normal = np.take(normals, prim, axis=0).reshape(height, width, 3)
            if "rgb" in kinds:
                frame.rgb = self._shade(t, prim, ft, rays, dlen, foot, shadows, ans, width, height)
                frame.rgb = frame.rgb.reshape(height, width, 3)
        return frame

    # ------------------------------------------------------------------
    def _occlusion(self, rays, prim, th, sun, width: int, height: int) -> np.ndarray:
        """Sun occlusion (bool per pixel) for the shadow rays in `rays`.

        Stride 1: one occlusion ray per pixel. Stride 2 (default for images of >= 200k pixels):
        rays are cast for one pixel of each 2x2 block (even row, even column) and the block
        shares its result, except that every pixel whose object differs from the block's
        representative, whose depth differs by more than 2 % + 2 cm, or whose representative
        has no sun term, casts its own ray. So shadows are exact across object edges and depth
        steps; only a shadow boundary crossing one surface is located to 2 pixels.
        """
        def test(r):
            return self._shadow_rs.test_occlusions(_o3d(r), tnear=2e-3, nthreads=self.nthreads).numpy()

        stride = self.shadow_stride or (2 if width * height >= 200_000 else 1)
        if stride == 1 or width < 2 or height < 2:
            return test(rays)

        def up(a):  # block representative's value for every pixel
            return np.repeat(np.repeat(a[::2, ::2], 2, 0), 2, 1)[:height, :width]

        rv = rays.reshape(height, width, 6)
        lo = test(np.ascontiguousarray(rv[::2, ::2])).reshape((height + 1) // 2, (width + 1) // 2)
        occ = np.ascontiguousarray(np.repeat(np.repeat(lo, 2, 0), 2, 1)[:height, :width]).reshape(-1)
        obj = np.take(self._tri_obj, prim).reshape(height, width)
        t2 = th.reshape(height, width)
        s2 = sun.reshape(height, width)
        bad = (obj != up(obj)) | (np.abs(t2 - up(t2)) > np.float32(0.02) * t2 + np.float32(0.02)) | (up(s2) <= 0)
        bad &= s2 > 0
        idx = np.flatnonzero(bad)
        if len(idx):
            occ[idx] = test(np.take(rays, idx, axis=0))
        return occ

    def _chunks(self, n: int) -> list[slice]:
        k = self.threads if n >= 20000 else 1
        edges = [n * i // k for i in range(k + 1)]
        return [slice(edges[i], edges[i + 1]) for i in range(k)]

    def _parallel(self, fn, chunks) -> None:
        if len(chunks) == 1:
            fn(chunks[0])
            return
        for f in [self._pool.submit(fn, c) for c in chunks]:
            f.result()

    def _shade(self, t, prim, ft, rays, dlen, foot, shadows, ans, width, height) -> np.ndarray:
        """Texture, light, shadow and fog every pixel; numpy work runs on row chunks in
        ``self.threads`` threads (numpy releases the GIL), Embree calls use all cores."""
        env = self.scene.environment
        n_pix = len(t)
        # column-major copies: per-pixel columns are contiguous rows (strided columns are slow)
        ftT = np.ascontiguousarray(ft.T)
        baryT = np.ascontiguousarray(ans["primitive_uvs"].numpy().T)
        albedo = np.empty((n_pix, 3), np.float32)
        light = np.empty((2, n_pix), np.float32)
        th = np.empty(n_pix, np.float32)
        out = np.empty((n_pix, 3), np.uint8)
        do_shadows = shadows and self._shadow_rs is not None
        fog_c = np.asarray(env.fog_color, np.float32) * 255
        sun_c = np.asarray(env.sun_color, np.float32)
        L = self._L

        def phase1(sl: slice) -> None:
            p = prim[sl]
            tb = np.take(ftT, p, axis=1)  # (10, n)
            hit = p < self._nt
            b1, b2 = baryT[0, sl], baryT[1, sl]
            uu = tb[1] * b1  # level-0 texel coordinates
            uu += tb[0]
            uu += tb[2] * b2
            vv = tb[4] * b1
            vv += tb[3]
            vv += tb[5] * b2
            tt = np.where(hit, t[sl], np.float32(0.0))
            th[sl] = tt
            # mip level ~ log2(texels per pixel): footprint t*|d|/fx metres times T/tile
            fp = tt * foot[sl]
            fp *= tb[6]
            _, e = np.frexp(fp)
            lvl = np.clip(e - 1, 0, _MIP_LEVELS - 1).astype(np.int32)
            size = np.right_shift(np.int32(TEX_SIZE), lvl)
            mask = size - 1
            iu = np.right_shift(np.floor(uu).astype(np.int32), lvl) & mask  # floor division by 2^lvl
            iv = np.right_shift(np.floor(vv).astype(np.int32), lvl) & mask
            flat = tb[7].astype(np.int32) * size
            flat += iv
            flat *= size
            flat += iu
            flat += np.take(self._mip_offsets32, lvl)
            a = albedo[sl]
            np.take(self._tex, flat, axis=0, out=a)
            if self._tri_color is not None:
                cc = np.take(self._tri_color, p, axis=0)
                a *= cc[:, 0:3] * (1 - b1 - b2)[:, None] + cc[:, 3:6] * b1[:, None] + cc[:, 6:9] * b2[:, None]
            light[:, sl] = tb[8:10]
            miss = np.flatnonzero(~hit)
            if len(miss):  # sky gradient by the ray's elevation (before the ray buffer is reused)
                rT = rays[sl].T
                inv = 1.0 / np.take(dlen[sl], miss)
                dz = np.take(rT[5], miss) * inv
                sky = np.take(self._sky_lut, ((dz + 1.0) * 512.0).astype(np.int32), axis=0)
                if not env.indoor:  # sun disc and glow around it
                    cosang = (np.take(rT[3], miss) * L[0] + np.take(rT[4], miss) * L[1]
                              + np.take(rT[5], miss) * L[2]) * inv
                    sky += np.take(self._glow_lut, ((cosang + 1.0) * 2047.5).astype(np.int32))[:, None]
                albedo[sl][miss] = sky
                light[0, sl][miss] = 1.0
                light[1, sl][miss] = 0.0
            if do_shadows:
                # shadow rays from every hit point toward the sun, in the primary ray buffer
                rT = rays[sl].T
                for k in range(3):
                    rT[k] += rT[k + 3] * tt
                # pixels without a sun term (facing away, emissive, sky) start far above the
                # scene instead, so their rays miss its bounding box at once
                if self._L[2] > 0.05:
                    rT[2] = np.where(tb[9] > 0, rT[2], self._far_z)
                rays[sl, 3:] = L

        def phase2(sl: slice) -> None:
            sun_amt = light[1, sl] if vis is None else light[1, sl] * vis[sl]
            col = albedo[sl] * (light[0, sl][:, None] + sun_amt[:, None] * sun_c)
            if env.fog_density > 0:  # misses have th = 0, so no fog over the sky
                f = np.exp(np.float32(-env.fog_density) * th[sl] * dlen[sl])
                col *= f[:, None]
                col += (1 - f)[:, None] * fog_c + np.float32(0.5)
            else:
                col += np.float32(0.5)
            np.minimum(col, np.float32(255.49), out=col)
            out[sl] = col

        chunks = self._chunks(n_pix)
        self._parallel(phase1, chunks)
        vis = None
        if do_shadows:
            occ = self._occlusion(rays, prim, th, light[1], width, height)
            vis = np.logical_not(occ).astype(np.float32)
        self._parallel(phase2, chunks)
        return out
