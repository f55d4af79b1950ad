"""The embedded renderer: Open3D ``RaycastingScene`` (Embree, CPU) plus compiled shading.

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
  ``visible`` comes from occlusion rays from the hit points toward the sun, cast only for pixels
  with a sun term (the others need none); on images of >= 200k pixels one ray per 2x2 block
  serves the block unless a pixel's object, depth or sun term differs from the block's, in which
  case it casts its own (``shadow_stride``); indoors the key light's shadows come from the
  furniture only (walls and ceiling do not block it). No
  randomness at render time: the same pose renders identically, whatever the thread count.

Speed: Embree calls use all cores (``nthreads=0``). Everything per pixel besides the ray casts
(primary rays, texture lookup, lighting, shadow-ray selection, fog, the uint8 image) is one
compiled pass each (:mod:`datagen.render.kernels`, numba, bit-identical to the numpy formulation
kept in ``tests/datagen/render_reference.py``) over pixel chunks in a small shared thread pool;
per-scene tables (texture pyramids, per-triangle uv/material rows) are made once and the per-pixel
buffers are reused for every frame of a size. One ``Renderer`` renders one frame at a time (a lock
guards the reused buffers).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import numpy as np
import open3d as o3d

from datagen.backends.base import CAPTURE_KINDS, Frame
from datagen.render import kernels
from datagen.render.textures import TEX_SIZE, make_texture
from datagen.scenes.scene import Scene

_MIP_LEVELS = 6  # 128 .. 4 texels
_CAMERA_CACHE = 4  # (size, K) buffer sets kept per Renderer


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _shared_pool(n: int) -> ThreadPoolExecutor:
    """One process-wide pool per size (renderers are many; threads should not multiply)."""
    with _POOLS_LOCK:
        if n not in _POOLS:
            _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix="relic-render")
        return _POOLS[n]


def _forget_pools_in_child() -> None:
    """A forked child (the corpus build's workers) inherits the pools but not their threads: work
    submitted there would wait forever. It starts with no pools and a fresh lock instead."""
    global _POOLS_LOCK
    _POOLS.clear()
    _POOLS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_in_child)


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
        self._L = np.asarray(env.sun_dir, np.float32)
        self._L = self._L / np.linalg.norm(self._L)
        self._ray_cache: dict = {}
        self._lock = threading.Lock()
        # shadow-ray stride: None = 2 for images of >= 200k pixels, else 1 (kernels.shadow_rays)
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
        # float32 normals as wound and turned around (row Nt zeros), to pick from per frame
        self._n_front = np.zeros((nt + 1, 3), np.float32)
        self._n_back = np.zeros((nt + 1, 3), np.float32)
        self._n_front[:nt] = nrm
        self._n_back[:nt] = -nrm
        self._no_color = np.ones((1, 9), np.float32)

    # ------------------------------------------------------------------
    @property
    def _pool(self) -> ThreadPoolExecutor | None:
        """The shading pool, looked up on use (so a renderer built before a fork works after it)."""
        return _shared_pool(self.threads) if self.threads > 1 else None

    def _camera(self, K: np.ndarray, width: int, height: int) -> "_CameraBuffers":
        """The cached :class:`_CameraBuffers` of (size, K); the least recently used of more than
        :data:`_CAMERA_CACHE` is dropped (~80 bytes per pixel each)."""
        key = (width, height, K.tobytes())
        c = self._ray_cache.pop(key, None)
        if c is None:
            c = _CameraBuffers(K, width, height)
            while len(self._ray_cache) >= _CAMERA_CACHE:
                self._ray_cache.pop(next(iter(self._ray_cache)))
        self._ray_cache[key] = c  # most recently used last
        return c

    def _frame_table(self, origin: np.ndarray):
        """Per-frame per-triangle lighting for a camera at `origin` (flat shading makes lighting a
        per-triangle quantity), each with a row Nt for misses:

        amb (Nt + 1,) float32: the ambient multiplier ambient * ((1 - tilt) + tilt * n_z) (1 for
        emissive); sun (Nt + 1,) float32: the sun term sun_strength * max(n.L, 0) (0 for
        emissive; the sun's colour multiplies it later); normals (Nt + 1, 3) float32: n, the
        geometric normal turned toward the camera (row Nt zeros).
        """
        env = self.scene.environment
        nt = self._nt
        side = np.einsum("ij,ij->i", self._tri_n, origin[None, :].astype(np.float64) - self._tri_p0)
        normals = np.where(np.append(side < 0, False)[:, None], self._n_back, self._n_front)
        n = normals[:nt]
        ndl = n @ self._L
        tilt = np.float32(env.ambient_tilt)
        amb = np.zeros(nt + 1, np.float32)
        sun = np.zeros(nt + 1, np.float32)
        amb[:nt] = np.float32(env.ambient) * ((1 - tilt) + tilt * n[:, 2])
        sun[:nt] = np.maximum(ndl, 0) * np.float32(env.sun_strength)
        emis = self._tri_emis
        amb[:nt][emis] = 1.0
        sun[:nt][emis] = 0.0
        return amb, sun, normals

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
        cam = self._camera(K, width, height)
        origin = c2w[:3, 3].astype(np.float32)
        R = np.ascontiguousarray(c2w[:3, :3], dtype=np.float32)
        # world ray directions, separable: d = x * R[:,0] + (y * R[:,1] + R[:,2]) (camera z = 1)
        self._parallel(lambda rows: kernels.primary_rays(cam.xs, cam.ys, R, origin, cam.rays, rows[0], rows[1]),
                       self._row_chunks(width, height))
        table = None
        if ("normal" in kinds or "rgb" in kinds) and self._pool is not None:
            # the per-triangle table is numpy work of its own: done beside the cast, not after it
            table = self._pool.submit(self._frame_table, c2w[:3, 3])
        ans = self._rs.cast_rays(_o3d(cam.rays), nthreads=self.nthreads)
        t = ans["t_hit"].numpy()
        prim = ans["primitive_ids"].numpy()  # uint32; misses: INVALID_ID (> every triangle index)
        frame = Frame(c2w=c2w.copy(), K=K.copy(), meta={"width": width, "height": height})
        if "depth" in kinds:
            frame.depth = t.reshape(height, width)  # Open3D's fresh array (its capsule owns the memory)
        if "mask" in kinds or "normal" in kinds:
            # triangle index per pixel (int64: the fastest index type for np.take); misses -> dummy row Nt
            prim64 = np.minimum(prim, np.uint32(self._nt)).astype(np.int64)
            if "mask" in kinds:
                frame.mask = np.take(self._tri_obj, prim64).reshape(height, width)
        if "normal" in kinds or "rgb" in kinds:
            amb, sun, normals = table.result() if table is not None else self._frame_table(c2w[:3, 3])
            if "normal" in kinds:
                frame.normal = np.take(normals, prim64, axis=0).reshape(height, width, 3)
            if "rgb" in kinds:
                frame.rgb = self._shade(cam, t, prim, ans["primitive_uvs"].numpy(), amb, sun, shadows,
                                        width, height).reshape(height, width, 3)
        return frame

    # ------------------------------------------------------------------
    def _row_chunks(self, width: int, height: int) -> list[tuple[int, int]]:
        """Row ranges [r0, r1) starting at even rows (a 2x2 shadow block never straddles two):
        4 per shading thread for load balance, one for small images."""
        k = 4 * self.threads if self.threads > 1 and width * height >= 20000 else 1
        k = max(1, min(k, height // 2))
        edges = [2 * ((height // 2) * i // k) for i in range(k)] + [height]
        return [(edges[i], edges[i + 1]) for i in range(k) if edges[i + 1] > edges[i]]

    def _parallel(self, fn, chunks) -> None:
        if len(chunks) == 1 or self._pool is None:
            for c in chunks:
                fn(c)
            return
        for f in [self._pool.submit(fn, c) for c in chunks]:
            f.result()

    def _shade(self, cam: "_CameraBuffers", t, prim, bary, amb, sun, shadows, width, height,
               out: np.ndarray | None = None) -> np.ndarray:
        """Texture, light, shadow and fog every pixel (module docstring): row chunks in
        ``self.threads`` threads, each running the compiled loops of :mod:`datagen.render.kernels`
        (they release the GIL) and its own Embree occlusion test (a pixel's shadow ray is its own
        or its 2x2 block's, always in the same chunk). Returns (N, 3) uint8 colours (into `out`
        if given; a float32 `out` receives the colours before the cast, for tests)."""
        env = self.scene.environment
        n_pix = len(t)
        if out is None:
            out = np.empty((n_pix, 3), np.uint8)
        chunks = self._row_chunks(width, height)
        tc = self._tri_color if self._tri_color is not None else self._no_color
        do_shadows = shadows and self._shadow_rs is not None
        stride = self.shadow_stride or (2 if width * height >= 200_000 else 1)
        if width < 2 or height < 2:
            stride = 1
        # Embree threads per occlusion call: the chunks already run in parallel
        occ_threads = 1 if len(chunks) > 1 and self._pool is not None else self.nthreads
        has_fog = env.fog_density > 0
        fog_c = np.asarray(env.fog_color, np.float32) * 255
        sun_c = np.asarray(env.sun_color, np.float32)
        neg_density = np.float32(-env.fog_density)

        def rows(chunk: tuple[int, int]) -> None:
            r0, r1 = chunk
            lo, hi = r0 * width, r1 * width
            kernels.shade_surface(lo, hi, t, prim, bary, self._nt, self._tbl, amb, sun, tc,
                                  self._tri_color is not None, cam.foot, cam.dlen, self._tex, self._mip_offsets32,
                                  TEX_SIZE, _MIP_LEVELS, cam.rays, self._sky_lut, self._glow_lut, self._L,
                                  not env.indoor, has_fog, neg_density, cam.albedo, cam.light0, cam.light1,
                                  cam.th, cam.fog)
            if do_shadows:
                n = kernels.shadow_rays(cam.rays, cam.th, cam.light1, prim, self._nt, self._tri_obj, width, r0, r1,
                                        stride, self._L, cam.shadow_rays, cam.src)
                if n:
                    cam.occluded[lo:lo + n] = self._shadow_rs.test_occlusions(
                        _o3d(cam.shadow_rays[lo:lo + n]), tnear=2e-3, nthreads=occ_threads).numpy()
            if has_fog:  # misses have th = 0, so no fog over the sky
                np.exp(cam.fog[lo:hi], out=cam.fog[lo:hi])
            kernels.compose(lo, hi, cam.albedo, cam.light0, cam.light1, cam.src, cam.occluded, do_shadows, sun_c,
                            cam.fog, has_fog, fog_c, out)

        self._parallel(rows, chunks)
        return out


class _CameraBuffers:
    """Per (size, K): camera-frame ray x (W,) and y (H,) coordinates at z = 1, the ray length |d|
    (N,), the mip footprint factor |d| / fx * TEX_SIZE (N,), and the buffers every frame of that
    size reuses (primary and shadow rays, per-pixel shading terms)."""

    def __init__(self, K: np.ndarray, width: int, height: int):
        xs = (np.arange(width, dtype=np.float64) + 0.5 - K[0, 2]) / K[0, 0]
        ys = (np.arange(height, dtype=np.float64) + 0.5 - K[1, 2]) / K[1, 1]
        dl = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2 + 1.0).reshape(-1)
        n = width * height
        self.xs, self.ys = xs.astype(np.float32), ys.astype(np.float32)
        self.dlen = dl.astype(np.float32)
        self.foot = (dl / K[0, 0] * TEX_SIZE).astype(np.float32)
        self.rays = np.empty((n, 6), np.float32)
        self.shadow_rays = np.empty((n, 6), np.float32)
        self.src = np.empty(n, np.int32)
        self.occluded = np.empty(n, np.bool_)
        self.albedo = np.empty((n, 3), np.float32)
        self.light0 = np.empty(n, np.float32)
        self.light1 = np.empty(n, np.float32)
        self.th = np.empty(n, np.float32)
        self.fog = np.empty(n, np.float32)
