"""Scene library: determinism, save/load, spawn poses, collision, user meshes, UE metadata, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from datagen.scenes.builder import SceneBuilder
from datagen.scenes.library import FAMILIES, describe_families, generate_scene, load_scene, save_scene
from datagen.scenes.scene import SceneGeometryUnavailable


def _arrays(s):
    return [s.vertices, s.triangles, s.tri_uv, s.tri_object, s.tri_material]


def test_families_cover_required_kinds():
    for f in ("apartment", "office", "street"):
        assert f in FAMILIES
    assert "park" in FAMILIES or "forest" in FAMILIES
    assert set(describe_families()) == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_bit_identical_and_spawn_free(family, tmp_path):
    s = generate_scene(family, 3)
    path = save_scene(s, tmp_path / f"{family}.json")
    d = json.loads(path.read_text())
    assert d["format"] == "relic-scene" and d["version"] == 1 and d["kind"] == "procedural"
    r = load_scene(path)
    assert r.scene_id == s.scene_id == f"{family}-0003"
    for a, b in zip(_arrays(s), _arrays(r)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert [o.to_dict() for o in s.objects] == [o.to_dict() for o in r.objects]
    assert np.array_equal(s.spawn_c2w, r.spawn_c2w)
    assert s.description == r.description and len(s.description) > 20
    # spawn is in free space, inside the walkable volume, with an orthonormal rotation
    assert s.is_free(s.spawn_c2w[:3, 3], 0.2)
    R = s.spawn_c2w[:3, :3]
    assert np.allclose(R.T @ R, np.eye(3), atol=1e-9)
    for o in s.objects:
        assert o.name and o.category and o.description


def test_different_seeds_and_families_differ():
    a, b = generate_scene("apartment", 0), generate_scene("apartment", 1)
    assert a.description != b.description
    assert a.vertices.shape != b.vertices.shape or not np.array_equal(a.vertices, b.vertices)
    pa = {m.name: m.color for m in a.materials if m.kind == "painting"}
    pb = {m.name: m.color for m in b.materials if m.kind == "painting"}
    assert pa and pb


def test_samples_free_points_everywhere():
    rng = np.random.default_rng(0)
    for family in FAMILIES:
        s = generate_scene(family, 1)
        for _ in range(5):
            p = s.sample_free_point(rng)
            assert s.is_free(p, 0.3)
            assert np.isclose(p[2], np.clip(s.ground_height(p[0:1], p[1:2])[0] + s.camera_height,
                                            s.bounds_min[2], s.bounds_max[2]))


def _wall_scene():
    """A 10 x 10 m room (walls 0.2 m thick, inner faces at x = +-4.9, y = +-4.9), a box in it."""
    b = SceneBuilder("test", 0)
    m = b.material("white", "paint", (0.8, 0.8, 0.8))
    w = b.obj("wall", "walls", m)
    for c, size in (((5, 0, 1.5), (0.2, 10, 3)), ((-5, 0, 1.5), (0.2, 10, 3)),
                    ((0, 5, 1.5), (10, 0.2, 3)), ((0, -5, 1.5), (10, 0.2, 3)),
                    ((0, 0, -0.05), (10, 10, 0.1)), ((0, 0, 3.05), (10, 10, 0.1))):
        b.box(w, m, c, size)
    o = b.obj("crate", "a crate", m)
    b.box(o, m, (2.0, 2.0, 0.5), (1.0, 1.0, 1.0), yaw=0.3)
    return b.build(description="test room", bounds_min=(-4.9, -4.9, 0.1), bounds_max=(4.9, 4.9, 2.9),
                   camera_height=1.5, spawn_candidates=[(0, 0, 1.5)], spec={"family": "test", "seed": 0})


def test_sweep_stops_before_wall_with_clearance():
    s = _wall_scene()
    p = s.sweep((0, 0, 1.5), (10, 0, 1.5), radius=0.25)
    assert 4.9 - 0.25 - 0.005 < p[0] <= 4.9 - 0.25 + 1e-9
    assert np.allclose(p[1:], (0, 1.5))
    # a free move goes all the way
    assert np.allclose(s.sweep((0, 0, 1.5), (-2, -1, 1.5), 0.25), (-2, -1, 1.5))
    # diagonal move into the yawed crate stops with clearance
    q = s.sweep((0, 0, 0.5), (2, 2, 0.5), 0.2)
    assert 0.19 < s.clearance(q)[0] - 0.0 < 0.21 + 0.003
    assert np.linalg.norm(q) < np.linalg.norm((2, 2)) - 0.5
    # a start inside geometry does not move
    assert np.allclose(s.sweep((2, 2, 0.5), (0, 0, 0.5)), (2, 2, 0.5))


def test_is_free_inside_objects_and_walls():
    s = _wall_scene()
    assert not s.is_free((2.0, 2.0, 0.5))         # inside the crate
    assert not s.is_free((5.0, 0.0, 1.5))         # inside a wall (and outside bounds)
    assert not s.is_free((4.8, 0.0, 1.5), 0.2)    # too close to the wall
    assert s.is_free((4.6, 0.0, 1.5), 0.2)
    assert not s.is_free((0, 0, 5.0))             # out of the walkable volume
    assert s.clearance([(2.0, 2.0, 0.5)])[0] < 0  # signed: negative inside


@pytest.mark.parametrize("family", FAMILIES)
def test_free_points_are_outside_all_rendered_geometry(family):
    """Points the collider calls free are (a) farther than the radius from every rendered
    triangle and (b) not inside any closed object: 14 rays from the point all hit front faces
    first (a back face first would mean the point is inside; this also checks outward winding)."""
    import open3d as o3d

    rng = np.random.default_rng(1)
    s = generate_scene(family, 2)
    rs = s.query_scene()
    pts = np.array([s.sample_free_point(rng, 0.3) for _ in range(25)], np.float32)
    d = rs.compute_distance(o3d.core.Tensor(pts)).numpy()
    assert np.all(d > 0.29), d.min()
    dirs = np.array([(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
                    + [(a, b, c) for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], np.float32)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    rays = np.concatenate([np.repeat(pts, len(dirs), 0), np.tile(dirs, (len(pts), 1))], 1)
    ans = rs.cast_rays(o3d.core.Tensor(rays))
    hit = np.isfinite(ans["t_hit"].numpy())
    back = np.einsum("ij,ij->i", ans["primitive_normals"].numpy(), rays[:, 3:]) > 0
    assert not np.any(hit & back), rays[hit & back][:3]


def test_unreal_metadata_scene(tmp_path):
    d = {"format": "relic-scene", "version": 1, "kind": "unreal", "map": "/Game/Maps/Loft",
         "bounds_min": [-5, -5, 0.2], "bounds_max": [5, 5, 2.8], "description": "a loft",
         "objects": [{"name": "Sofa_1", "category": "sofa", "description": "a sofa"}]}
    p = tmp_path / "loft.json"
    p.write_text(json.dumps(d))
    s = load_scene(p)
    assert s.kind == "unreal" and s.scene_id == "Loft" and s.objects[0].category == "sofa"
    assert s.spawn_c2w.shape == (4, 4)
    for call in (lambda: s.is_free((0, 0, 1)), lambda: s.sweep((0, 0, 1), (1, 0, 1)),
                 lambda: s.sample_free_point(np.random.default_rng(0))):
        with pytest.raises(SceneGeometryUnavailable, match="UnrealCV"):
            call()
    from datagen.render.renderer import Renderer

    with pytest.raises(SceneGeometryUnavailable):
        Renderer(s)
    assert load_scene(save_scene(s, tmp_path / "again.json")).to_dict() == s.to_dict()


def test_bad_scene_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_scene(tmp_path / "missing.json")
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_scene(p)
    p.write_text(json.dumps({"format": "relic-scene", "version": 1, "kind": "procedural", "family": "castle", "seed": 1}))
    with pytest.raises(ValueError, match="unknown scene family"):
        load_scene(p)
    p.write_text(json.dumps({"format": "relic-scene", "version": 1, "kind": "procedural", "family": "park",
                             "seed": 1, "generator_version": 999}))
    with pytest.raises(ValueError, match="generator version 999"):
        load_scene(p)
