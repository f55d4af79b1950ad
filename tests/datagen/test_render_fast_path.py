"""The renderer's compiled shading path gives bit-identical images to the original numpy shading.

Both run here, in this process, on the same Renderer (the same Embree scenes, so the same ray-cast
hits on whatever CPU runs the test): nothing rests on float-exact output stored from another
machine. The reference is ``render_reference.py`` beside this file (the numpy code the kernels
replaced). Scenes cover indoor (key light, shadow casters), outdoor (fog, sky, sun glow), vertex
colours (user meshes), images above and below the 200k-pixel shadow-stride switch, odd sizes,
forced strides, shadows on and off, every capture kind and 1 and 2 shading threads.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from datagen.conventions import intrinsics_from_fov, look_at
from datagen.render.renderer import Renderer
from datagen.scenes.library import generate_scene

_spec = importlib.util.spec_from_file_location("render_reference", Path(__file__).with_name("render_reference.py"))
render_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_reference)

KINDS = ("rgb", "depth", "normal", "mask")


def _poses(scene, n_random: int = 2) -> list[np.ndarray]:
    """The spawn pose yawed, one looking up (sky, sun glow), one looking down, random free poses."""
    c0 = np.asarray(scene.spawn_c2w, np.float64)
    p = c0[:3, 3]
    out = []
    for a in (0.0, 2.1):
        Rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
        c = c0.copy()
        c[:3, :3] = Rz @ c0[:3, :3]
        out.append(c)
    L = np.asarray(scene.environment.sun_dir, np.float64)
    out.append(look_at(p, p + np.array([L[0], L[1], 0.0]) + np.array([0, 0, 0.8])))
    out.append(look_at(p, p + np.array([0.6, 0.3, -1.0])))
    rng = np.random.default_rng(5)
    for _ in range(n_random):
        q = scene.sample_free_point(rng, radius=0.3)
        yaw = rng.uniform(-np.pi, np.pi)
        out.append(look_at(q, q + np.array([np.cos(yaw), np.sin(yaw), rng.uniform(-0.3, 0.3)])))
    return out


def _mesh_scene(tmp_path: Path):
    """Three user meshes with random per-vertex colours (the renderer's tri_color path)."""
    import open3d as o3d

    from datagen.scenes.meshes import mesh_scene_from_dict

    rng = np.random.default_rng(3)
    entries = []
    for k, (mesh, c) in enumerate([(o3d.geometry.TriangleMesh.create_sphere(1.0, 12), (4, 0, 1)),
                                   (o3d.geometry.TriangleMesh.create_box(2, 1, 1.5), (0, 4, 0)),
                                   (o3d.geometry.TriangleMesh.create_torus(1.2, 0.4, 16, 8), (-4, -1, 1))]):
        mesh.translate(c)
        mesh.vertex_colors = o3d.utility.Vector3dVector(rng.random((len(mesh.vertices), 3)))
        path = tmp_path / f"m{k}.ply"
        o3d.io.write_triangle_mesh(str(path), mesh)
        entries.append({"path": str(path)})
    return mesh_scene_from_dict({"meshes": entries, "seed": 0})


def _assert_same(r: Renderer, c2w, w: int, h: int, kinds=KINDS, shadows: bool = True, fov: float = 90.0) -> None:
    K = intrinsics_from_fov(w, h, fov)
    new = r.render(c2w, K, w, h, kinds, shadows=shadows)
    ref = render_reference.reference_render(r, c2w, K, w, h, kinds, shadows=shadows)
    for k in ("rgb", "depth", "normal", "mask"):
        a, b = getattr(new, k), getattr(ref, k)
        if k not in kinds:
            assert a is None and b is None
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, k
        diff = int(np.count_nonzero(a != b)) if k != "depth" else int(np.count_nonzero(~((a == b) | (np.isinf(a) & np.isinf(b)))))
        assert diff == 0, f"{k}: {diff} values differ at {w}x{h} (shadows={shadows}, threads={r.threads})"


@pytest.fixture(scope="module")
def scenes():
    return {"apartment": generate_scene("apartment", 0), "street": generate_scene("street", 0)}


@pytest.mark.parametrize("family", ["apartment", "street"])
def test_fast_path_matches_numpy_reference(scenes, family):
    scene = scenes[family]
    r = Renderer(scene)
    poses = _poses(scene)
    for i, c2w in enumerate(poses):
        _assert_same(r, c2w, 832, 480)           # stride-2 shadows (>= 200k pixels)
        _assert_same(r, c2w, 112, 64)            # stride 1
        if i < 2:
            _assert_same(r, c2w, 832, 480, shadows=False)
            _assert_same(r, c2w, 97, 53, kinds=("rgb",))
    # forced strides, 1-pixel-high and narrow images, a different field of view
    r.shadow_stride = 1
    _assert_same(r, poses[0], 416, 240)
    r.shadow_stride = 2
    _assert_same(r, poses[1], 113, 65, fov=70.0)
    _assert_same(r, poses[1], 64, 1, kinds=("rgb",))
    _assert_same(r, poses[1], 1, 40, kinds=("rgb",))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fast_path_matches_reference_whatever_the_thread_count(scenes, threads):
    scene = scenes["street"]
    r = Renderer(scene, threads=threads)
    for c2w in _poses(scene, n_random=1)[:3]:
        _assert_same(r, c2w, 832, 480)


def test_fast_path_vertex_colours(tmp_path):
    scene = _mesh_scene(tmp_path)
    r = Renderer(scene)
    c0 = look_at((0.0, -6.0, 1.5), (0.0, 0.0, 1.0))
    for c2w in (c0, look_at((0.0, 0.0, 3.0), (4.0, 0.0, 1.0)), look_at((6.0, 6.0, 2.0), (-4.0, -1.0, 1.0))):
        _assert_same(r, c2w, 832, 480)
        _assert_same(r, c2w, 112, 64)
        r.shadow_stride = 1
        _assert_same(r, c2w, 160, 96, shadows=True)
        r.shadow_stride = None
    # the meshes' colours are what make the images: they are not all-background
    K = intrinsics_from_fov(112, 64, 90.0)
    f = r.render(c0, K, 112, 64, ("rgb", "mask"))
    assert (f.mask >= 0).mean() > 0.05


class _Answer:
    """Stands in for Open3D's cast_rays answer where the reference reads it (barycentrics)."""

    def __init__(self, bary):
        self._bary = bary

    def __getitem__(self, key):
        assert key == "primitive_uvs"
        return type("T", (), {"numpy": lambda _s: self._bary})()


@pytest.mark.parametrize("which", ["street", "apartment", "mesh"])
@pytest.mark.parametrize("shadows", [True, False])
def test_kernels_match_reference_on_synthetic_hits(scenes, tmp_path, which, shadows):
    """A million synthetic hits (random triangles, distances, barycentrics; 10 % misses) through
    both shadings: with continuous random values, a single rounding step done differently (an
    operation reordered, a fused multiply-add, a float64 intermediate) changes some pixel of the
    texture lookup or the uint8 output, which real frames rarely reveal."""
    scene = _mesh_scene(tmp_path) if which == "mesh" else scenes[which]
    r = Renderer(scene)
    W, H = 1000, 1000
    K = intrinsics_from_fov(W, H, 90.0)
    pose = _poses(scene, n_random=0)[2]  # looking up: sky and sun glow in the ray directions
    r.render(pose, K, W, H, kinds=())     # fills the primary-ray buffer
    cam = r._camera(K, W, H)
    rng = np.random.default_rng(11)
    n = W * H
    prim = rng.integers(0, r._nt, n).astype(np.uint32)
    prim[rng.random(n) < 0.1] = np.uint32(0xFFFFFFFF)
    hit = prim != np.uint32(0xFFFFFFFF)
    t = np.where(hit, rng.uniform(0.05, 80.0, n), np.inf).astype(np.float32)
    bary = rng.random((n, 2)).astype(np.float32)
    over = bary.sum(1) > 1
    bary[over] = 1 - bary[over]
    bary[~hit] = 0
    amb, sun, normals = r._frame_table(pose[:3, 3])
    ft, ref_normals = render_reference._frame_table(r, pose[:3, 3])
    assert np.array_equal(ft[:, 8], amb) and np.array_equal(ft[:, 9], sun) and np.array_equal(normals, ref_normals)
    rays = cam.rays.copy()
    new = r._shade(cam, t, prim, bary, amb, sun, shadows, W, H)
    assert np.array_equal(cam.rays, rays)  # the primary rays are left as they were
    prim64 = np.minimum(prim, np.uint32(r._nt)).astype(np.int64)
    keep = {}
    ref = render_reference._shade(r, t, prim64, ft, rays, cam.dlen, cam.foot, shadows, _Answer(bary), W, H, keep)
    diff = int(np.count_nonzero(new != ref))
    assert diff == 0, f"{diff} channel values differ"
    # the float intermediates too (a rounding done differently rarely crosses a uint8 step)
    assert np.array_equal(cam.albedo, keep["albedo"])
    assert np.array_equal(cam.light0, keep["light"][0]) and np.array_equal(cam.th, keep["th"])
    assert np.array_equal(cam.light1, keep["light"][1])
    col = np.empty((n, 3), np.float32)
    r._shade(cam, t, prim, bary, amb, sun, shadows, W, H, out=col)
    assert np.array_equal(col, keep["col"]), f"{int(np.count_nonzero(col != keep['col']))} colour values differ"
    assert len(np.unique(ref)) > 200  # the comparison covers the whole output range


def test_buffers_are_reused_and_frames_are_independent(scenes):
    """Frames rendered one after another do not share arrays, and buffers are not reallocated."""
    r = Renderer(scenes["apartment"])
    K = intrinsics_from_fov(112, 64, 90.0)
    poses = _poses(scenes["apartment"], n_random=0)
    a = r.render(poses[0], K, 112, 64, KINDS)
    cam = r._camera(K, 112, 64)
    bufs = [id(x) for x in (cam.rays, cam.shadow_rays, cam.albedo, cam.light0, cam.light1, cam.th, cam.src, cam.occluded)]
    a_rgb = a.rgb.copy()
    b = r.render(poses[1], K, 112, 64, KINDS)
    assert [id(x) for x in (cam.rays, cam.shadow_rays, cam.albedo, cam.light0, cam.light1, cam.th, cam.src,
                            cam.occluded)] == bufs
    assert np.array_equal(a.rgb, a_rgb) and not np.array_equal(a.rgb, b.rgb)
    for k in KINDS:
        assert not np.shares_memory(getattr(a, k), getattr(b, k))
