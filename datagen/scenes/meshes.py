"""Scenes made of user meshes (glTF/GLB, OBJ, PLY, ... anything Open3D's reader opens).

Each mesh file becomes one object. Its material is the entry's ``material`` dict (a
:class:`Material`), else plain paint modulated by the file's vertex colours when it has them,
else light grey paint. Texture coordinates are box-projected from world positions (metres), so
procedural textures tile at ``tile_m`` metres; image textures inside glTF files are not used.
Collision queries use the meshes themselves (Open3D distance + ray-parity occupancy).

Defaults when the file does not say: walkable volume = the meshes' bounding box grown by 3 m
horizontally, z from its bottom + 0.2 m to its top + 2 m; ground = the bottom of the bounding
box; spawn = a free point at eye height facing the most open direction.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from datagen.scenes import geometry as G
from datagen.scenes.builder import SceneBuilder, choose_spawn
from datagen.scenes.geometry import MeshPart
from datagen.scenes.materials import Material
from datagen.scenes.scene import Scene


def _read_mesh(path: Path):
    import open3d as o3d

    if not path.is_file():
        raise FileNotFoundError(f"mesh file {path} does not exist")
    m = o3d.io.read_triangle_mesh(str(path), enable_post_processing=False)
    v = np.asarray(m.vertices, np.float64)
    t = np.asarray(m.triangles, np.int64)
    if len(v) == 0 or len(t) == 0:
        raise ValueError(f"{path}: Open3D read no triangles (is it a triangle mesh in glTF/OBJ/PLY/STL/OFF?)")
    colors = np.asarray(m.vertex_colors, np.float64) if m.has_vertex_colors() else None
    return v, t, colors


def _box_uv(v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-corner metric UVs: project each triangle on the plane of its dominant normal axis."""
    p = v[t]  # (M, 3, 3)
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    ax = np.argmax(np.abs(n), axis=1)
    uax = np.where(ax == 0, 1, 0)
    vax = np.where(ax == 2, 1, 2)
    rows = np.arange(len(t))[:, None]
    u = p[rows, np.arange(3)[None, :], uax[:, None]]
    w = -p[rows, np.arange(3)[None, :], vax[:, None]]
    return np.stack([u, w], -1).astype(np.float32)


def mesh_scene_from_dict(d: dict, base_dir=None) -> Scene:
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    entries = d.get("meshes") or []
    if not entries:
        raise ValueError("mesh scene has no 'meshes' entries")
    b = SceneBuilder("mesh", int(d.get("seed", 0)))
    colors_all = []
    any_colors = False
    for k, e in enumerate(entries):
        path = Path(e["path"])
        if not path.is_absolute():
            path = base / path
        v, t, col = _read_mesh(path)
        if e.get("material"):
            mat = Material.from_dict(e["material"])
            if mat.name in b._mat_index:
                mat.name = f"{mat.name}_{k}"
            b._mat_index[mat.name] = len(b.materials)
            b.materials.append(mat)
            mname = mat.name
        else:
            mname = b.material("mesh_paint" if col is not None else "mesh_grey", "paint",
                               (1.0, 1.0, 1.0) if col is not None else (0.75, 0.75, 0.75), tile_m=2.0)
        name = e.get("name") or path.stem
        o = b.obj(e.get("category", "mesh"), e.get("description", f"a {name} mesh"), mname, caster=True)
        b.objects[o].name = name if name not in [x.name for x in b.objects[:-1]] else f"{name}_{k}"
        b.part(o, mname, MeshPart(v.astype(np.float32), t.astype(np.int32), _box_uv(v, t)))
        if col is not None:
            any_colors = True
            colors_all.append(col[t].astype(np.float32))
        else:
            colors_all.append(np.ones((len(t), 3, 3), np.float32))
    verts = np.concatenate([p[2].vertices for p in b.parts])
    lo, hi = verts.min(0).astype(np.float64), verts.max(0).astype(np.float64)
    cam_h = float(d.get("camera_height", 1.6))
    bmin = np.asarray(d["bounds_min"], float) if d.get("bounds_min") else np.array([lo[0] - 3, lo[1] - 3, lo[2] + 0.2])
    bmax = np.asarray(d["bounds_max"], float) if d.get("bounds_max") else np.array([hi[0] + 3, hi[1] + 3, hi[2] + 2.0])
    spec = {k: v for k, v in d.items() if k not in ("format", "version", "kind")}
    spec.setdefault("floor_z", float(lo[2]))
    name = d.get("name") or "-".join(Path(e["path"]).stem for e in entries)[:60]
    desc = d.get("description") or ("User meshes: " + ", ".join(o.description for o in b.objects) + ".")
    mesh = G.merge([p[2] for p in b.parts])
    tri_obj = np.concatenate([np.full(len(p[2].triangles), p[0], np.int32) for p in b.parts])
    tri_mat = np.concatenate([np.full(len(p[2].triangles), p[1], np.int32) for p in b.parts])
    scene = Scene(scene_id=d.get("scene_id", f"mesh-{name}"), family="mesh", seed=int(d.get("seed", 0)),
                  description=desc, objects=b.objects, materials=b.materials, bounds_min=bmin, bounds_max=bmax,
                  spawn_c2w=np.eye(4), camera_height=cam_h, vertices=mesh.vertices, triangles=mesh.triangles,
                  tri_uv=mesh.uv, tri_object=tri_obj, tri_material=tri_mat, environment=b.environment,
                  spec=spec, kind="mesh")
    scene.base_dir = str(base)  # mesh paths in the spec are relative to this folder
    if any_colors:
        scene.tri_color = np.concatenate(colors_all).reshape(-1, 9)
    if d.get("spawn_c2w") is not None:
        scene.spawn_c2w = np.asarray(d["spawn_c2w"], float)
    else:
        c = (bmin + bmax) / 2
        cands = [(c[0], c[1], lo[2] + cam_h), (bmin[0] + 1.0, c[1], lo[2] + cam_h), (c[0], bmin[1] + 1.0, lo[2] + cam_h)]
        scene.spawn_c2w = choose_spawn(scene, cands, np.random.default_rng(0))
    return scene


def mesh_scene_spec(paths, out_dir=None, description: str | None = None) -> dict:
    """Scene-file dict for user meshes; paths are stored relative to `out_dir` when possible."""
    entries = []
    for p in paths:
        p = Path(p).resolve()
        _read_mesh(p)  # fail early with a clear message
        rel = p
        if out_dir is not None:
            try:
                rel = Path(p).relative_to(Path(out_dir).resolve())
            except ValueError:
                rel = p
        entries.append({"path": str(rel), "category": "mesh", "description": f"a {p.stem} mesh", "material": None})
    d = {"format": "relic-scene", "version": 1, "kind": "mesh", "meshes": entries}
    if description:
        d["description"] = description
    return d
