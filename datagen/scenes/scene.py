"""The :class:`Scene`: geometry, materials, objects, walkable volume, spawn pose and collision.

Conventions (ours, see :mod:`datagen.conventions`): world metres, right-handed, Z up; poses are
camera-to-world 4x4 float64 with OpenCV camera axes.

Geometry is one merged triangle soup (float32 vertices, int32 triangles) with per-triangle
object index (into ``objects``), material index (into ``materials``) and per-corner texture
coordinates (see :mod:`datagen.scenes.geometry`). Collision uses analytic solids that the
generator places with every solid object (yawed boxes, vertical cylinders, spheres, and an
optional terrain heightfield: they say what is INSIDE a solid) together with the exact unsigned
distance to the rendered triangles (Open3D ``compute_distance``), so a free point is never
closer than its radius to anything visible. For user-mesh scenes, inside-ness comes from Open3D
ray-parity occupancy. Clearance of a point = min(analytic signed distance, triangle distance);
negative inside a solid.

Scene files are JSON: ``{"format": "relic-scene", "version": 1, "kind": ...}`` with kind
``"procedural"`` (family, seed, generator_version, params: regenerated deterministically),
``"mesh"`` (user meshes by path, with materials) or ``"unreal"`` (metadata of an Unreal level:
no geometry; its geometry methods raise :class:`SceneGeometryUnavailable`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from datagen.conventions import look_at
from datagen.scenes.materials import Material

SCENE_FORMAT = "relic-scene"
SCENE_VERSION = 1


class SceneGeometryUnavailable(RuntimeError):
    """Raised by geometry queries on a scene that has no geometry here (kind "unreal")."""


@dataclass
class SceneObject:
    """One named thing in the scene; mask ids index ``Scene.objects``.

    name: unique id ("sofa_03"); category: a class word ("sofa", "painting", "tree", "wall");
    description: short noun phrase for captions ("a green velvet sofa"); material: name of its
    main material.
    """

    name: str
    category: str
    description: str
    material: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Colliders:
    """Analytic solids for collision. Arrays are float64; empty arrays when absent.

    boxes:     centre (N, 3), half extents (N, 3) in the box frame, yaw (N,) radians about +Z.
    cylinders: base centre (N, 3), radius (N,), height (N,) (vertical, Z).
    spheres:   centre (N, 3), radius (N,).
    cones:     base centre (N, 3), base radius (N,), height (N,) (vertical, apex on top).
    terrain:   optional (x0, y0, x1, y1, heights[nx, ny]) heightfield; below it is solid.
    """

    box_c: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    box_h: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    box_yaw: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    cyl_b: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    cyl_r: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    cyl_h: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    sph_c: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    sph_r: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    cone_b: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    cone_r: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    cone_h: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    terrain: Optional[tuple] = None

    def distance(self, p: np.ndarray) -> np.ndarray:
        """Signed distance (m) from points (P, 3) to the nearest solid; +inf when there is none."""
        p = np.atleast_2d(np.asarray(p, np.float64))
        d = np.full(len(p), np.inf)
        if len(self.box_c):
            q = p[:, None, :] - self.box_c[None]
            c, s = np.cos(self.box_yaw)[None], np.sin(self.box_yaw)[None]
            lx = c * q[..., 0] + s * q[..., 1]
            ly = -s * q[..., 0] + c * q[..., 1]
            loc = np.stack([lx, ly, q[..., 2]], -1)
            e = np.abs(loc) - self.box_h[None]
            out = np.linalg.norm(np.maximum(e, 0.0), axis=-1)
            inside = np.minimum(e.max(-1), 0.0)
            d = np.minimum(d, (out + inside).min(1))
        if len(self.cyl_b):
            q = p[:, None, :] - self.cyl_b[None]
            dr = np.hypot(q[..., 0], q[..., 1]) - self.cyl_r[None]
            dz = np.maximum(-q[..., 2], q[..., 2] - self.cyl_h[None])
            e = np.stack([dr, dz], -1)
            out = np.linalg.norm(np.maximum(e, 0.0), axis=-1)
            d = np.minimum(d, (out + np.minimum(e.max(-1), 0.0)).min(1))
        if len(self.sph_c):
            d = np.minimum(d, (np.linalg.norm(p[:, None] - self.sph_c[None], axis=-1) - self.sph_r[None]).min(1))
        if len(self.cone_b):
            q = p[:, None, :] - self.cone_b[None]
            r = np.hypot(q[..., 0], q[..., 1])
            z = q[..., 2]
            R, H = self.cone_r[None], self.cone_h[None]
            d1 = np.hypot(np.maximum(r - R, 0.0), z)  # to the base disc (r in [0, R], z = 0)
            # to the slanted side, segment (R, 0) -> (0, H) in the (r, z) plane
            ex, ez = -R, H
            tt = np.clip(((r - R) * ex + z * ez) / (ex * ex + ez * ez), 0.0, 1.0)
            d2 = np.hypot(r - (R + tt * ex), z - tt * ez)
            inside = (z >= 0) & (z <= H) & (r <= R * (1 - z / H))
            dc = np.minimum(d1, d2)
            d = np.minimum(d, np.where(inside, -dc, dc).min(1))
        if self.terrain is not None:
            d = np.minimum(d, (p[:, 2] - terrain_height(self.terrain, p[:, 0], p[:, 1])) * 0.9)
        return d


def terrain_height(terrain, x, y) -> np.ndarray:
    """Bilinear height (m) of a heightfield (x0, y0, x1, y1, heights) at x, y; -inf outside."""
    x0, y0, x1, y1, h = terrain
    h = np.asarray(h, np.float64)
    nx, ny = h.shape
    fx = (np.asarray(x, np.float64) - x0) / (x1 - x0) * (nx - 1)
    fy = (np.asarray(y, np.float64) - y0) / (y1 - y0) * (ny - 1)
    inside = (fx >= 0) & (fx <= nx - 1) & (fy >= 0) & (fy <= ny - 1)
    i = np.clip(np.floor(fx).astype(int), 0, nx - 2)
    j = np.clip(np.floor(fy).astype(int), 0, ny - 2)
    tx, ty = np.clip(fx - i, 0, 1), np.clip(fy - j, 0, 1)
    z = (h[i, j] * (1 - tx) * (1 - ty) + h[i + 1, j] * tx * (1 - ty) + h[i, j + 1] * (1 - tx) * ty
         + h[i + 1, j + 1] * tx * ty)
    return np.where(inside, z, -np.inf)


@dataclass
class Environment:
    """Lighting and atmosphere. Directions are unit vectors in our world; colours sRGB floats.

    sun_dir points FROM the surface TOWARD the sun. ``indoor`` scenes light with a key light
    whose shadows are cast only by ``shadow_casters`` objects (furniture), plus ambient.
    Colour of a lit surface = albedo * (ambient * ((1 - ambient_tilt) + ambient_tilt * n_z)
    + sun_color * sun_strength * max(n . sun_dir, 0) * visible).
    fog: colour = mix(colour, fog_color, 1 - exp(-fog_density * distance_m)).
    """

    sun_dir: tuple = (0.4, 0.3, 0.85)
    sun_color: tuple = (1.0, 0.95, 0.85)
    sun_strength: float = 0.75
    sky_top: tuple = (0.35, 0.55, 0.9)
    sky_horizon: tuple = (0.78, 0.85, 0.95)
    ground_color: tuple = (0.35, 0.32, 0.28)
    ambient: float = 0.45
    ambient_tilt: float = 0.2  # ambient multiplier = (1 - tilt) + tilt * n_z (sky brighter than ground)
    fog_color: tuple = (0.78, 0.85, 0.95)
    fog_density: float = 0.004
    indoor: bool = False

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Environment":
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


class Scene:
    """A renderable, collidable scene. See the module docstring for conventions."""

    def __init__(self, *, scene_id: str, family: str, seed: int, description: str,
                 objects: list[SceneObject], materials: list[Material],
                 bounds_min, bounds_max, spawn_c2w, camera_height: float,
                 vertices=None, triangles=None, tri_uv=None, tri_object=None, tri_material=None,
                 colliders: Optional[Colliders] = None, environment: Optional[Environment] = None,
                 shadow_casters: Optional[np.ndarray] = None, spec: Optional[dict] = None,
                 kind: str = "procedural"):
        self.scene_id = scene_id
        self.family = family
        self.seed = int(seed)
        self.description = description
        self.objects = list(objects)
        self.materials = list(materials)
        self.bounds_min = np.asarray(bounds_min, np.float64)
        self.bounds_max = np.asarray(bounds_max, np.float64)
        self.spawn_c2w = np.asarray(spawn_c2w, np.float64)
        self.camera_height = float(camera_height)
        self.kind = kind
        self.vertices = None if vertices is None else np.ascontiguousarray(vertices, np.float32)
        self.triangles = None if triangles is None else np.ascontiguousarray(triangles, np.int32)
        self.tri_uv = None if tri_uv is None else np.ascontiguousarray(tri_uv, np.float32)
        self.tri_object = None if tri_object is None else np.ascontiguousarray(tri_object, np.int32)
        self.tri_material = None if tri_material is None else np.ascontiguousarray(tri_material, np.int32)
        self.colliders = colliders if colliders is not None else Colliders()
        self.environment = environment if environment is not None else Environment()
        # object indices whose geometry casts shadows of the key light (None = everything)
        self.shadow_casters = None if shadow_casters is None else np.asarray(shadow_casters, np.int32)
        self.spec = dict(spec or {})
        self.base_dir: Optional[str] = None  # folder that relative paths in spec (mesh files) refer to
        self._mesh_query = None  # Open3D scene for mesh-kind collision
        # optional per-corner colour (Nt, 9) float32 multiplying the albedo (user meshes' vertex colours)
        self.tri_color: Optional[np.ndarray] = None

    # ------------------------------------------------------------------ basics
    @property
    def has_geometry(self) -> bool:
        return self.vertices is not None and len(self.triangles) > 0

    def _need_geometry(self):
        if not self.has_geometry:
            raise SceneGeometryUnavailable(
                f"scene {self.scene_id!r} is kind {self.kind!r} (metadata only, no geometry here); "
                "render or collide it through the UnrealCV backend against a running UE level")

    def object_index(self, name: str) -> int:
        for i, o in enumerate(self.objects):
            if o.name == name:
                return i
        raise KeyError(f"no object named {name!r} in scene {self.scene_id}")

    def material_index(self, name: str) -> int:
        for i, m in enumerate(self.materials):
            if m.name == name:
                return i
        raise KeyError(f"no material named {name!r} in scene {self.scene_id}")

    def __repr__(self) -> str:
        n = 0 if self.triangles is None else len(self.triangles)
        return f"Scene({self.scene_id!r}, kind={self.kind}, objects={len(self.objects)}, triangles={n})"

    # ------------------------------------------------------------------ collision
    def ground_height(self, x, y) -> np.ndarray:
        """Height (m) of the walkable ground under (x, y): the terrain, else bounds_min z - 0."""
        if self.colliders.terrain is not None:
            h = terrain_height(self.colliders.terrain, x, y)
            return np.where(np.isfinite(h), h, 0.0)
        return np.zeros(np.shape(x)) + self.spec.get("floor_z", 0.0)

    def clearance(self, points) -> np.ndarray:
        """Distance (m) from each point (P, 3) to the nearest solid; negative inside a solid."""
        self._need_geometry()
        p = np.atleast_2d(np.asarray(points, np.float64))
        d = self.colliders.distance(p)
        return np.minimum(d, self._mesh_distance(p, occupancy=(self.kind == "mesh")))

    def query_scene(self):
        """Open3D RaycastingScene of all triangles (built once; for distance and ray queries)."""
        import open3d as o3d

        self._need_geometry()
        if self._mesh_query is None:
            rs = o3d.t.geometry.RaycastingScene()
            rs.add_triangles(o3d.core.Tensor(self.vertices), o3d.core.Tensor(self.triangles.astype(np.uint32)))
            self._mesh_query = rs
        return self._mesh_query

    def _mesh_distance(self, p: np.ndarray, occupancy: bool) -> np.ndarray:
        import open3d as o3d

        q = o3d.core.Tensor(p.astype(np.float32))
        dist = self.query_scene().compute_distance(q, nthreads=1).numpy().astype(np.float64)
        if not occupancy:
            return dist
        occ = self.query_scene().compute_occupancy(q, nsamples=3, nthreads=1).numpy() > 0.5
        return np.where(occ, -dist, dist)

    def in_bounds(self, points) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points, np.float64))
        return np.all((p >= self.bounds_min - 1e-9) & (p <= self.bounds_max + 1e-9), axis=1)

    def is_free(self, p, radius: float = 0.2) -> bool:
        """True if `p` (metres) is inside the walkable volume with `radius` clearance to solids."""
        p = np.asarray(p, np.float64).reshape(1, 3)
        return bool(self.in_bounds(p)[0] and self.clearance(p)[0] > radius)

    def free_mask(self, points, radius: float = 0.2) -> np.ndarray:
        """Vectorised :meth:`is_free` over points (P, 3)."""
        p = np.atleast_2d(np.asarray(points, np.float64))
        return self.in_bounds(p) & (self.clearance(p) > radius)

    def sweep(self, p0, p1, radius: float = 0.2) -> np.ndarray:
        """Furthest point along segment p0 -> p1 reachable keeping `radius` clearance.

        The camera is a sphere of `radius`; it moves from p0 toward p1 and stops just before it
        would come closer than `radius` to a solid or leave the walkable bounds. If p0 itself is
        not free, p0 is returned (no move). Sphere tracing with analytic distances, then a
        bisection refinement (final gap to the contact < 2 mm).
        """
        self._need_geometry()
        p0 = np.asarray(p0, np.float64).reshape(3)
        p1 = np.asarray(p1, np.float64).reshape(3)
        if not self.is_free(p0, radius):
            return p0.copy()
        delta = p1 - p0
        length = float(np.linalg.norm(delta))
        if length < 1e-12:
            return p0.copy()
        direction = delta / length
        # clip to the walkable bounds
        t_max = length
        for a in range(3):
            if direction[a] > 1e-12:
                t_max = min(t_max, (self.bounds_max[a] - p0[a]) / direction[a])
            elif direction[a] < -1e-12:
                t_max = min(t_max, (self.bounds_min[a] - p0[a]) / direction[a])
        t_max = max(0.0, t_max)
        t = 0.0
        for _ in range(10000):
            if t >= t_max:
                return p0 + direction * t_max
            gap = float(self.clearance(p0 + direction * t)[0]) - radius
            step = max(gap, 0.01)
            t_new = min(t + step, t_max)
            if float(self.clearance(p0 + direction * t_new)[0]) - radius <= 0.0:
                lo, hi = t, t_new
                while hi - lo > 1e-3:
                    mid = 0.5 * (lo + hi)
                    if float(self.clearance(p0 + direction * mid)[0]) - radius > 0.0:
                        lo = mid
                    else:
                        hi = mid
                return p0 + direction * lo
            t = t_new
        return p0 + direction * t

    def sample_free_point(self, rng: np.random.Generator, radius: float = 0.3, max_tries: int = 4000) -> np.ndarray:
        """A random free point at eye height (ground under it + camera_height, clipped to bounds).

        x, y uniform over the walkable bounds; rejection-sampled (64 candidates per batch) until
        one has `radius` clearance. Raises RuntimeError if none is found in `max_tries`.
        """
        self._need_geometry()
        tried = 0
        while tried < max_tries:
            n = 64
            xy = self.bounds_min[:2] + rng.random((n, 2)) * (self.bounds_max[:2] - self.bounds_min[:2])
            z = self.ground_height(xy[:, 0], xy[:, 1]) + self.camera_height
            z = np.clip(z, self.bounds_min[2], self.bounds_max[2])
            pts = np.concatenate([xy, z[:, None]], 1)
            ok = np.flatnonzero(self.free_mask(pts, radius))
            if len(ok):
                return pts[ok[0]].copy()
            tried += n
        raise RuntimeError(f"no free point with {radius} m clearance found in scene {self.scene_id}")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        """The scene FILE content (spec, not arrays): procedural/mesh regenerate their geometry."""
        d = {"format": SCENE_FORMAT, "version": SCENE_VERSION, "kind": self.kind}
        d.update(self.spec)
        return d

    def summary(self) -> dict:
        cats: dict[str, int] = {}
        for o in self.objects:
            cats[o.category] = cats.get(o.category, 0) + 1
        return {
            "scene_id": self.scene_id, "kind": self.kind, "family": self.family, "seed": self.seed,
            "description": self.description, "objects": len(self.objects), "categories": cats,
            "triangles": 0 if self.triangles is None else int(len(self.triangles)),
            "materials": len(self.materials), "bounds_min": self.bounds_min.tolist(),
            "bounds_max": self.bounds_max.tolist(), "spawn_c2w": self.spawn_c2w.tolist(),
            "camera_height": self.camera_height,
        }


def yaw_look_c2w(position, yaw: float, pitch: float = 0.0) -> np.ndarray:
    """c2w (OpenCV camera axes) at `position` looking toward heading `yaw` (rad, from +X toward +Y)
    tilted by `pitch` (rad, positive = up), with the horizon level."""
    p = np.asarray(position, np.float64)
    f = np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), math.sin(pitch)])
    return look_at(p, p + f)
