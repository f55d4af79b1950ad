"""Triangle-mesh builders for procedural scenes (our world: metres, right-handed, Z up).

Every builder returns a :class:`MeshPart`: float32 vertices (N, 3), int32 triangles (M, 3) with
counter-clockwise winding seen from outside (normals point out), and per-triangle-corner texture
coordinates ``uv`` (M, 3, 2) float32.

UV conventions
    ``"metric"``: u, v are metres along the face (so a texture tiles at the same world scale on
    every face; the material's ``tile_m`` says how many metres one texture repeat covers).
    ``"unit"``:   u, v run 0..1 across each face (for paintings, posters, screens, windows), with
    v = 0 at the TOP of a vertical face and u = 0 on its left when seen from the front.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class MeshPart:
    vertices: np.ndarray  # (N, 3) float32
    triangles: np.ndarray  # (M, 3) int32
    uv: np.ndarray  # (M, 3, 2) float32

    def transformed(self, rot: np.ndarray, trans) -> "MeshPart":
        v = (self.vertices.astype(np.float64) @ np.asarray(rot, np.float64).T) + np.asarray(trans, np.float64)
        return MeshPart(v.astype(np.float32), self.triangles, self.uv)


def rot_z(yaw: float) -> np.ndarray:
    """3x3 rotation about +Z by `yaw` radians."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def merge(parts: list[MeshPart]) -> MeshPart:
    vs, ts, uvs, off = [], [], [], 0
    for p in parts:
        vs.append(p.vertices)
        ts.append(p.triangles + off)
        uvs.append(p.uv)
        off += len(p.vertices)
    return MeshPart(np.concatenate(vs).astype(np.float32), np.concatenate(ts).astype(np.int32),
                    np.concatenate(uvs).astype(np.float32))


def _quad(corners: np.ndarray, uvs: np.ndarray) -> MeshPart:
    """Quad from 4 corners (CCW seen from the front) and their 4 uv's -> 2 triangles."""
    tris = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    return MeshPart(corners.astype(np.float32), tris, uvs[tris].astype(np.float32))


# Faces of a unit box [-1, 1]^3: (outward axis, sign, u axis, v axis) with u x v = outward for CCW.
_BOX_FACES = [
    (0, +1, 1, 2), (0, -1, 1, 2), (1, +1, 0, 2), (1, -1, 0, 2), (2, +1, 0, 1), (2, -1, 0, 1),
]


def box(center, size, yaw: float = 0.0, uv_mode: str = "metric", faces: tuple[int, ...] | None = None) -> MeshPart:
    """Axis-aligned (then yawed about Z around its centre) box of full `size` (sx, sy, sz) metres.

    `faces` optionally restricts to a subset of face indices into ``_BOX_FACES`` order
    (+x, -x, +y, -y, +z, -z). In ``"unit"`` uv mode every face maps to 0..1 with v = 0 at the top.
    """
    c = np.asarray(center, np.float64)
    h = np.asarray(size, np.float64) / 2.0
    parts = []
    for fi, (ax, sgn, ua, va) in enumerate(_BOX_FACES):
        if faces is not None and fi not in faces:
            continue
        # Build the 4 corners so the quad is CCW seen from outside.
        u_dir = np.zeros(3); u_dir[ua] = 1.0
        v_dir = np.zeros(3); v_dir[va] = 1.0
        n = np.zeros(3); n[ax] = sgn
        if np.dot(np.cross(u_dir, v_dir), n) < 0:
            u_dir = -u_dir  # flip u so (u, v, n) is right-handed
        cen = n * h
        hu, hv = abs(np.dot(u_dir, h)), abs(np.dot(v_dir, h))
        corners = np.array([cen - u_dir * hu - v_dir * hv, cen + u_dir * hu - v_dir * hv,
                            cen + u_dir * hu + v_dir * hv, cen - u_dir * hu + v_dir * hv])
        if uv_mode == "unit":
            if ax == 2:
                uvs = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float64)
            else:  # vertical face: v axis is world z; v=0 at the top
                uvs = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float64)
        else:
            # metric: world-anchored coordinates so neighbouring boxes' textures line up
            wc = corners + c  # before yaw; good enough (yaw rotates the whole texture)
            uvs = np.stack([wc @ np.abs(u_dir), wc @ np.abs(v_dir)], axis=1)
            if ax != 2:
                uvs[:, 1] = -uvs[:, 1]  # texture rows go down with z
        parts.append(_quad(corners, uvs))
    m = merge(parts)
    return MeshPart(m.vertices, m.triangles, m.uv).transformed(rot_z(yaw), c) if yaw else \
        MeshPart((m.vertices + c).astype(np.float32), m.triangles, m.uv)


def cylinder(base, radius: float, height: float, segments: int = 12, top_radius: float | None = None,
             caps: bool = True) -> MeshPart:
    """Vertical (Z) cylinder or cone frustum standing on `base` (centre of the bottom disc)."""
    b = np.asarray(base, np.float64)
    rt = radius if top_radius is None else top_radius
    ang = np.linspace(0.0, 2 * math.pi, segments + 1)
    vs, tris, uvs = [], [], []
    for i in range(segments):
        a0, a1 = ang[i], ang[i + 1]
        p = [np.array([radius * math.cos(a0), radius * math.sin(a0), 0.0]),
             np.array([radius * math.cos(a1), radius * math.sin(a1), 0.0]),
             np.array([rt * math.cos(a1), rt * math.sin(a1), height]),
             np.array([rt * math.cos(a0), rt * math.sin(a0), height])]
        k = len(vs)
        vs.extend(p)
        s0, s1 = a0 * radius, a1 * radius
        quv = np.array([[s0, 0.0], [s1, 0.0], [s1, -height], [s0, -height]])
        for t in ([0, 1, 2], [0, 2, 3]):
            if t == [0, 2, 3] and rt == 0.0:
                continue
            tris.append([k + t[0], k + t[1], k + t[2]])
            uvs.append(quv[t])
    if caps:
        for z, r, up in ((0.0, radius, False), (height, rt, True)):
            if r <= 0:
                continue
            k = len(vs)
            vs.append(np.array([0.0, 0.0, z]))
            for i in range(segments):
                a0, a1 = ang[i], ang[i + 1]
                k0 = len(vs)
                vs.append(np.array([r * math.cos(a0), r * math.sin(a0), z]))
                vs.append(np.array([r * math.cos(a1), r * math.sin(a1), z]))
                tri = [k, k0, k0 + 1] if up else [k, k0 + 1, k0]
                tris.append(tri)
                uvs.append(np.array([vs[j][:2] for j in tri]))
    v = np.array(vs) + b
    return MeshPart(v.astype(np.float32), np.array(tris, np.int32), np.array(uvs, np.float32))


def sphere(center, radius, rings: int = 6, segments: int = 10, squash: float = 1.0, jitter=None) -> MeshPart:
    """Low-poly UV sphere (Z scaled by `squash`); `jitter` (rng) perturbs radii for organic shapes."""
    c = np.asarray(center, np.float64)
    verts = []
    for i in range(rings + 1):
        th = math.pi * i / rings
        for j in range(segments):
            ph = 2 * math.pi * j / segments
            verts.append([math.sin(th) * math.cos(ph), math.sin(th) * math.sin(ph), math.cos(th)])
    verts = np.array(verts)
    if jitter is not None:
        jit = 1.0 + 0.15 * (jitter.random((rings + 1, segments)) - 0.5)
        jit[0, :] = jit[0, 0]  # the poles are one point each: jitter them as one (no folded faces)
        jit[-1, :] = jit[-1, 0]
        verts *= jit.reshape(-1, 1)
    verts = verts * radius * np.array([1.0, 1.0, squash]) + c
    tris = []
    for i in range(rings):
        for j in range(segments):
            a = i * segments + j
            b = i * segments + (j + 1) % segments
            cc = (i + 1) * segments + (j + 1) % segments
            d = (i + 1) * segments + j
            if i > 0:
                tris.append([a, d, b])
            if i < rings - 1:
                tris.append([b, d, cc])
    tris = np.array(tris, np.int32)
    uv_v = (verts - c)[:, [0, 2]] + (verts - c)[:, [1, 1]] * 0.5  # crude metric uv (noise textures)
    return MeshPart(verts.astype(np.float32), tris, uv_v[tris].astype(np.float32))


def heightfield(x0, y0, x1, y1, heights: np.ndarray) -> MeshPart:
    """Terrain grid over [x0, x1] x [y0, y1]; heights[i, j] at x = x0 + i*dx, y = y0 + j*dy."""
    nx, ny = heights.shape
    xs = np.linspace(x0, x1, nx)
    ys = np.linspace(y0, y1, ny)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    verts = np.stack([X, Y, heights], -1).reshape(-1, 3)
    idx = np.arange(nx * ny).reshape(nx, ny)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    tris = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    uv = verts[:, :2][tris] * np.array([1.0, -1.0])
    return MeshPart(verts.astype(np.float32), tris.astype(np.int32), uv.astype(np.float32))
