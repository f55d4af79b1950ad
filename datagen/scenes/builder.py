"""Accumulates objects, materials, mesh parts and colliders, then builds a :class:`Scene`.

Generators (``datagen.scenes.families.*``) call ``material``/``obj``/``part``/collider methods and
finally :meth:`SceneBuilder.build`. Insertion order is the only source of ordering, so a
generator that draws from a seeded Generator yields bit-identical arrays every time.
"""
from __future__ import annotations

import math
import re

import numpy as np

from datagen.scenes import geometry as G
from datagen.scenes.materials import Material
from datagen.scenes.scene import Colliders, Environment, Scene, SceneObject, yaw_look_c2w


def fix_articles(text: str) -> str:
    """'a oak desk' -> 'an oak desk' (descriptions are assembled from parts)."""
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


class SceneBuilder:
    def __init__(self, family: str, seed: int):
        self.family = family
        self.seed = int(seed)
        self.materials: list[Material] = []
        self._mat_index: dict[str, int] = {}
        self.objects: list[SceneObject] = []
        self._names: dict[str, int] = {}
        self.parts: list[tuple[int, int, G.MeshPart]] = []
        self.boxes: list[tuple] = []
        self.cyls: list[tuple] = []
        self.sphs: list[tuple] = []
        self.cones: list[tuple] = []
        self.terrain = None
        self.shadow_casters: list[int] | None = None
        self.environment = Environment()

    # -------------------------------------------------------------- registry
    def material(self, name: str, kind: str, color, color2=(0.5, 0.5, 0.5), tile_m: float = 1.0,
                 seed: int | None = None, **params) -> str:
        if name in self._mat_index:
            return name
        if seed is None:
            seed = (self.seed * 1000003 + len(self.materials) * 7919) & 0x7FFFFFFF
        self._mat_index[name] = len(self.materials)
        self.materials.append(Material(name, kind, tuple(color), tuple(color2), float(tile_m), int(seed),
                                       params=params))
        return name

    def obj(self, category: str, description: str, material: str = "", caster: bool = False) -> int:
        k = self._names.get(category, 0)
        self._names[category] = k + 1
        self.objects.append(SceneObject(f"{category}_{k:02d}", category, fix_articles(description), material))
        idx = len(self.objects) - 1
        if caster:
            if self.shadow_casters is None:
                self.shadow_casters = []
            self.shadow_casters.append(idx)
        return idx

    def part(self, obj: int, material: str, mesh: G.MeshPart) -> None:
        self.parts.append((obj, self._mat_index[material], mesh))

    # -------------------------------------------------------------- helpers
    def box(self, obj: int, material: str, center, size, yaw: float = 0.0, collide: bool = True,
            uv_mode: str = "metric", faces=None) -> None:
        self.part(obj, material, G.box(center, size, yaw, uv_mode=uv_mode, faces=faces))
        if collide:
            self.box_collider(center, size, yaw)

    def box_collider(self, center, size, yaw: float = 0.0) -> None:
        self.boxes.append((tuple(map(float, center)), tuple(float(s) / 2 for s in size), float(yaw)))

    def cyl_collider(self, base, radius, height) -> None:
        self.cyls.append((tuple(map(float, base)), float(radius), float(height)))

    def cone_collider(self, base, radius, height) -> None:
        self.cones.append((tuple(map(float, base)), float(radius), float(height)))

    def sphere_collider(self, center, radius) -> None:
        self.sphs.append((tuple(map(float, center)), float(radius)))

    # -------------------------------------------------------------- build
    def colliders(self) -> Colliders:
        c = Colliders()
        if self.boxes:
            c.box_c = np.array([b[0] for b in self.boxes], np.float64)
            c.box_h = np.array([b[1] for b in self.boxes], np.float64)
            c.box_yaw = np.array([b[2] for b in self.boxes], np.float64)
        if self.cyls:
            c.cyl_b = np.array([b[0] for b in self.cyls], np.float64)
            c.cyl_r = np.array([b[1] for b in self.cyls], np.float64)
            c.cyl_h = np.array([b[2] for b in self.cyls], np.float64)
        if self.sphs:
            c.sph_c = np.array([b[0] for b in self.sphs], np.float64)
            c.sph_r = np.array([b[1] for b in self.sphs], np.float64)
        if self.cones:
            c.cone_b = np.array([b[0] for b in self.cones], np.float64)
            c.cone_r = np.array([b[1] for b in self.cones], np.float64)
            c.cone_h = np.array([b[2] for b in self.cones], np.float64)
        c.terrain = self.terrain
        return c

    def build(self, *, description: str, bounds_min, bounds_max, camera_height: float,
              spawn_candidates, spec: dict, kind: str = "procedural", scene_id: str | None = None,
              rng: np.random.Generator | None = None) -> Scene:
        parts = [p[2] for p in self.parts]
        mesh = G.merge(parts)
        tri_obj = np.concatenate([np.full(len(p[2].triangles), p[0], np.int32) for p in self.parts])
        tri_mat = np.concatenate([np.full(len(p[2].triangles), p[1], np.int32) for p in self.parts])
        scene = Scene(
            scene_id=scene_id or f"{self.family}-{self.seed:04d}", family=self.family, seed=self.seed,
            description=fix_articles(description), objects=self.objects, materials=self.materials,
            bounds_min=bounds_min, bounds_max=bounds_max, spawn_c2w=np.eye(4), camera_height=camera_height,
            vertices=mesh.vertices, triangles=mesh.triangles, tri_uv=mesh.uv, tri_object=tri_obj,
            tri_material=tri_mat, colliders=self.colliders(), environment=self.environment,
            shadow_casters=None if self.shadow_casters is None else np.array(self.shadow_casters, np.int32),
            spec=spec, kind=kind)
        scene.spawn_c2w = choose_spawn(scene, spawn_candidates, rng or np.random.default_rng(self.seed))
        return scene


STRUCTURE = {"wall", "floor", "ceiling", "ceiling_light", "terrain", "road", "road_marking", "sidewalk",
             "ground", "path", "window"}


def view_score(scene: Scene, c2w: np.ndarray, w: int = 40, h: int = 24) -> float:
    """How interesting a view is: distinct non-structural objects seen in a w x h ray grid
    (90 deg horizontal FOV), plus openness (median depth, capped at 8 m, x 0.5), minus 3 if the
    centre third of the view is closer than 1.5 m anywhere."""
    import open3d as o3d

    f = (w / 2) / math.tan(math.radians(45))
    xs = (np.arange(w) + 0.5 - w / 2) / f
    ys = (np.arange(h) + 0.5 - h / 2) / f
    d = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None], np.ones((h, w))), -1).reshape(-1, 3)
    dw = d @ c2w[:3, :3].T
    rays = np.concatenate([np.broadcast_to(c2w[:3, 3], dw.shape), dw], 1).astype(np.float32)
    ans = scene.query_scene().cast_rays(o3d.core.Tensor(rays))
    t = ans["t_hit"].numpy().reshape(h, w)
    prim = ans["primitive_ids"].numpy()
    hit = prim < len(scene.triangles)
    objs = np.unique(scene.tri_object[prim[hit]])
    n_interesting = sum(1 for o in objs if scene.objects[o].category not in STRUCTURE)
    depth = np.where(np.isfinite(t), t, 30.0)
    centre = depth[h // 3: 2 * h // 3, w // 3: 2 * w // 3]
    return n_interesting + 0.5 * float(np.median(np.minimum(depth, 8.0))) - (3.0 if centre.min() < 1.5 else 0.0)


def choose_spawn(scene: Scene, candidates, rng: np.random.Generator, radius: float = 0.35) -> np.ndarray:
    """Spawn pose: among the free candidates (else sampled free points) at eye height and 12
    headings each, the level view with the best :func:`view_score` (ties: first)."""
    pts = [np.asarray(c, np.float64) for c in candidates if scene.is_free(np.asarray(c, np.float64), radius)]
    while len(pts) < 2:
        pts.append(scene.sample_free_point(rng, radius=radius))
    best, best_pose = -1e9, None
    for pos in pts[:8]:
        for k in range(12):
            pose = yaw_look_c2w(pos, 2 * math.pi * k / 12, math.radians(-4.0))
            sc = view_score(scene, pose)
            if sc > best + 1e-9:
                best, best_pose = sc, pose
    return best_pose
