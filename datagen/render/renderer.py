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
  pixel footprint so distant textures do not alias. ``visible`` comes from occlusion rays toward
  the sun cast only for hit pixels facing it (indoors the key light's shadows come from the
  furniture only, walls and ceiling do not block it). No randomness at render time: the same
  pose renders identically.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import open3d as o3d

from datagen.backends.base import CAPTURE_KINDS, Frame
from datagen.render.textures import TEX_SIZE, make_texture
from datagen.scenes.scene import Scene

_MIP_LEVELS = 6  # 128 .. 4 texels


def _o3d(a: np.ndarray) -> o3d.core.Tensor:
    return o3d.core.Tensor.from_numpy(np.ascontiguousarray(a))


class Renderer:
    """Renders one :class:`Scene`. Build once per scene (textures and BVH are made here)."""

    def __init__(self, scene: Scene, nthreads: int = 0):
        scene._need_geometry()
        self.scene = scene
        self.nthreads = int(nthreads)
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
        self._mip_offsets = np.cumsum([0] + [lv[:, :, :, 0].size for lv in levels])[:-1].astype(np.int64)
        self._tex = np.concatenate([lv.reshape(-1, 3) for lv in levels]).astype(np.float32)
        self._inv_tile = np.array([1.0 / max(m.tile_m, 1e-6) for m in scene.materials] or [1.0], np.float32)
        self._emissive = np.array([m.emissive for m in scene.materials] or [False])
        self._texel_m = (1.0 / self._inv_tile / TEX_SIZE).astype(np.float32)
        self._tri_uv = scene.tri_uv.reshape(-1, 6)
        self._tri_mat = scene.tri_material
        self._tri_obj = scene.tri_object
        self._tri_emissive = self._emissive[scene.tri_material]
        self._L = np.asarray(env.sun_dir, np.float32)
        self._L = self._L / np.linalg.norm(self._L)
        self._ray_cache: dict = {}

    # ------------------------------------------------------------------
    def _camera_dirs(self, K: np.ndarray, width: int, height: int) -> np.ndarray:
        key = (width, height, K.tobytes())
        d = self._ray_cache.get(key)
        if d is None:
            xs = (np.arange(width, dtype=np.float64) + 0.5 - K[0, 2]) / K[0, 0]
            ys = (np.arange(height, dtype=np.float64) + 0.5 - K[1, 2]) / K[1, 1]
            d = np.empty((height, width, 3), np.float64)
            d[..., 0] = xs[None, :]
            d[..., 1] = ys[:, None]
            d[..., 2] = 1.0
            d = d.reshape(-1, 3)
            if len(self._ray_cache) > 8:
                self._ray_cache.clear()
            self._ray_cache[key] = d
        return d

    def render(self, c2w, K, width: int, height: int, kinds: Iterable[str] = ("rgb", "depth"),
               shadows: bool = True) -> Frame:
        kinds = tuple(kinds)
        bad = [k for k in kinds if k not in CAPTURE_KINDS]
        if bad:
            raise ValueError(f"unknown capture kind(s) {bad}; choose from {CAPTURE_KINDS}")
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"resolution must be positive, got {width}x{height}")
        c2w = np.asarray(c2w, np.float64)
        K = np.asarray(K, np.float64)
        dcam = self._camera_dirs(K, width, height)
        R = c2w[:3, :3]
        origin = c2w[:3, 3]
        n_pix = width * height
        rays = np.empty((n_pix, 6), np.float32)
        rays[:, :3] = origin
        dirs = (dcam @ R.T).astype(np.float32)
        rays[:, 3:] = dirs
        ans = self._rs.cast_rays(_o3d(rays), nthreads=self.nthreads)
        t = ans["t_hit"].numpy()
        hit = np.isfinite(t)
        idx = np.flatnonzero(hit)
        prim = ans["primitive_ids"].numpy()[idx].astype(np.int64)
        frame = Frame(c2w=c2w.copy(), K=K.copy(), meta={"width": width, "height": height})

        need_n = ("normal" in kinds) or ("rgb" in kinds)
        if need_n:
            n = ans["primitive_normals"].numpy()[idx]
            dh = dirs[idx]
            flip = np.einsum("ij,ij->i", n, dh) > 0
            n = np.where(flip[:, None], -n, n)
        if "depth" in kinds:
            frame.depth = t.reshape(height, width).astype(np.float32, copy=True)
        if "mask" in kinds:
            m = np.full(n_pix, -1, np.int32)
            m[idx] = self._tri_obj[prim]
            frame.mask = m.reshape(height, width)
        if "normal" in kinds:
            nn = np.zeros((n_pix, 3), np.float32)
            nn[idx] = n
            frame.normal = nn.reshape(height, width, 3)
        if "rgb" in kinds:
            frame.rgb = self._shade(t, idx, prim, n, dirs, origin, K, shadows, n_pix, ans).reshape(height, width, 3)
        return frame

    # ------------------------------------------------------------------
    def _shade(self, t, idx, prim, n, dirs, origin, K, shadows, n_pix, ans) -> np.ndarray:
        env = self.scene.environment
        out = np.empty((n_pix, 3), np.float32)
        # sky for every pixel first (cheap), then overwrite hits
        dn = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        up = np.clip(dn[:, 2], 0.0, 1.0)[:, None] ** 0.6
        sky_h = np.asarray(env.sky_horizon, np.float32)
        sky_t = np.asarray(env.sky_top, np.float32)
        out[:] = sky_h * (1 - up) + sky_t * up
        below = dn[:, 2] < 0
        out[below] = np.asarray(env.fog_color, np.float32)
        if len(idx):
            th = t[idx]
            bary = ans["primitive_uvs"].numpy()[idx]
            b1, b2 = bary[:, 0:1], bary[:, 1:2]
            uvc = self._tri_uv[prim]  # (k, 6): u0 v0 u1 v1 u2 v2
            uv = uvc[:, 0:2] * (1 - b1 - b2) + uvc[:, 2:4] * b1 + uvc[:, 4:6] * b2
            mat = self._tri_mat[prim]
            # mip level from the pixel footprint: metres per pixel ~ t*|d|/fx vs texel size
            dl = np.linalg.norm(dirs[idx], axis=1)
            foot = th * dl / np.float32(K[0, 0])
            ratio = foot / self._texel_m[mat]
            lvl = np.clip(np.floor(np.log2(np.maximum(ratio, 1e-6)) + 0.5), 0, _MIP_LEVELS - 1).astype(np.int64)
            size = TEX_SIZE >> lvl
            uvs = uv * self._inv_tile[mat][:, None]
            iu = np.floor(uvs[:, 0] * size).astype(np.int64) & (size - 1)
            iv = np.floor(uvs[:, 1] * size).astype(np.int64) & (size - 1)
            flat = self._mip_offsets[lvl] + (mat * size + iv) * size + iu
            albedo = self._tex[flat]
            if self.scene.tri_color is not None:
                cc = self.scene.tri_color[prim]
                albedo = albedo * (cc[:, 0:3] * (1 - b1 - b2) + cc[:, 3:6] * b1 + cc[:, 6:9] * b2)
            # lighting
            L = self._L
            ndl = n @ L
            emis = self._tri_emissive[prim]
            amb = np.float32(env.ambient) * (0.8 + 0.2 * n[:, 2])
            light = np.repeat(amb[:, None], 3, axis=1)
            facing = np.flatnonzero((ndl > 0) & ~emis)
            if len(facing):
                vis = np.ones(len(facing), np.float32)
                if shadows and self._shadow_rs is not None:
                    p = origin.astype(np.float32) + dirs[idx[facing]] * th[facing, None]
                    p = p + n[facing] * np.float32(2e-3) + L * np.float32(1e-3)
                    srays = np.empty((len(facing), 6), np.float32)
                    srays[:, :3] = p
                    srays[:, 3:] = L
                    occ = self._shadow_rs.test_occlusions(_o3d(srays), nthreads=self.nthreads).numpy()
                    vis = np.where(occ, np.float32(0.0), np.float32(1.0))
                sun = np.asarray(env.sun_color, np.float32) * np.float32(env.sun_strength)
                light[facing] += (ndl[facing] * vis)[:, None] * sun
            col = albedo * light
            col[emis] = albedo[emis]
            if env.fog_density > 0:
                f = 1.0 - np.exp(-np.float32(env.fog_density) * th * dl)
                col = col * (1 - f)[:, None] + np.asarray(env.fog_color, np.float32) * f[:, None]
            out[idx] = col
        return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
