"""Outdoor families: "street" (a city street), "park" and "forest" (terrain with trees).

street: an asphalt road along +X with a dashed centre line, raised paved sidewalks, rows of
buildings (brick, plaster, concrete, glass) with windows, doors and shop awnings, parked cars,
street lamps, trees, benches and bins; a building closes each end. Ground z = 0 (road).
park/forest: a heightfield terrain (fBm, gentle slopes) covered with grass / forest floor, a
gravel or dirt path whose triangles get their own material, trees (broadleaf: sphere crowns;
conifer: stacked cones), bushes, rocks, benches and lamps (park), a pond (park), fallen logs
(forest). The walkable volume spans the area; eye height is 1.7 m above the ground.
"""
from __future__ import annotations

import math

import numpy as np

from datagen.render.textures import _noise
from datagen.scenes import geometry as G
from datagen.scenes.builder import SceneBuilder
from datagen.scenes.families import furniture as F
from datagen.scenes.procedural import procedural_spec
from datagen.scenes.scene import terrain_height

EYE = 1.7


def _sky(b: SceneBuilder, rng, haze=0.004, forest=False):
    env = b.environment
    env.indoor = False
    az = rng.random() * 2 * math.pi
    el = math.radians(30 + 35 * rng.random())
    env.sun_dir = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
    warm = rng.random()
    env.sun_color = (1.0, 0.93 - 0.1 * warm, 0.82 - 0.2 * warm)
    env.sun_strength = 0.8
    env.ambient = 0.42
    top = np.array([0.28, 0.5, 0.88]) * (0.9 + 0.2 * rng.random(3))
    env.sky_top = tuple(float(x) for x in np.clip(top, 0, 1))
    env.sky_horizon = (0.8, 0.86, 0.93) if not forest else (0.75, 0.82, 0.8)
    env.fog_color = env.sky_horizon
    env.fog_density = haze
    env.ground_color = (0.3, 0.3, 0.25)


def _tree(b: SceneBuilder, rng, base, kind=None, scale=1.0, collide=True) -> str:
    kind = kind or ["broadleaf", "conifer", "birch"][int(rng.integers(3))]
    bark_col = (0.38, 0.27, 0.18) if kind != "birch" else (0.85, 0.84, 0.8)
    bark = b.material(f"bark_{kind}", "bark", bark_col, (0.22, 0.15, 0.1) if kind != "birch" else (0.2, 0.2, 0.2),
                      tile_m=1.0)
    shades = {"broadleaf": ((0.18, 0.42, 0.14), (0.35, 0.58, 0.2)), "conifer": ((0.07, 0.25, 0.12), (0.15, 0.38, 0.18)),
              "birch": ((0.35, 0.55, 0.18), (0.55, 0.7, 0.3))}[kind]
    tint = int(rng.integers(3))
    leaves = b.material(f"leaves_{kind}_{tint}", "leaves", np.asarray(shades[0]) * (0.85 + 0.1 * tint),
                        np.asarray(shades[1]) * (0.85 + 0.1 * tint), tile_m=1.5)
    desc = {"broadleaf": "a leafy oak tree", "conifer": "a tall pine tree", "birch": "a white birch tree"}[kind]
    o = b.obj("tree", desc, leaves, caster=True)
    x, y, z = base
    h = (4.0 + 3.0 * rng.random()) * scale
    r = (0.15 + 0.12 * rng.random()) * scale
    if kind == "conifer":
        b.part(o, bark, G.cylinder((x, y, z - 0.2), r, h * 0.5, 8, caps=False))
        n = 3
        for i in range(n):
            z0 = z + h * (0.25 + 0.22 * i)
            rr = (1.8 - 0.45 * i) * scale * (0.9 + 0.2 * rng.random())
            b.part(o, leaves, G.cylinder((x, y, z0), rr, h * 0.45, 10, top_radius=0.0))
            if collide:
                b.cone_collider((x, y, z0), rr * math.cos(math.pi / 10), h * 0.45)  # inscribed in the 10-gon
    else:
        b.part(o, bark, G.cylinder((x, y, z - 0.2), r, h * 0.65, 8, top_radius=r * 0.6, caps=False))
        for i in range(int(rng.integers(1, 4))):
            off = (rng.random(3) - 0.5) * np.array([1.6, 1.6, 1.0]) * scale
            rr = (1.4 + 0.9 * rng.random()) * scale * (0.7 if kind == "birch" else 1.0)
            c = (x + off[0], y + off[1], z + h * 0.75 + off[2])
            b.part(o, leaves, G.sphere(c, rr, squash=0.85, jitter=rng))
            if collide:  # inside of the (squashed, jittered) crown
                b.sphere_collider(c, rr * 0.86)
    if collide:
        b.cyl_collider((x, y, z - 0.3), r + 0.05, h * 0.7 + 0.3)
    return desc


def _terrain(rng, half: float, n: int, amp: float, flat_fn=None):
    hs = np.zeros((n, n), np.float64)
    for k, cells in enumerate((2, 4, 8)):
        hs += amp / (2 ** k) * (_noise(rng, n, cells).astype(np.float64) - 0.5) * 2
    return hs


def _path_curve(rng, half, n_pts=7):
    """A smooth path across the area: points (N, 2) along x with wandering y."""
    xs = np.linspace(-half + 2, half - 2, 200)
    ph = rng.random(3) * 6.28
    ys = half * 0.35 * (np.sin(xs / half * 2.1 + ph[0]) * 0.6 + np.sin(xs / half * 4.3 + ph[1]) * 0.3)
    return np.stack([xs, ys], 1)


def _dist_to_curve(pts2, curve):
    d = np.full(len(pts2), np.inf)
    for i in range(0, len(curve) - 1, 2):
        d = np.minimum(d, np.linalg.norm(pts2 - curve[i], axis=1))
    return d


def generate_nature(family: str, seed: int, params: dict):
    forest = family == "forest"
    rng = np.random.default_rng([seed, 3 if forest else 2, 11])
    b = SceneBuilder(family, seed)
    half = float(params.get("half_size", 30.0 if forest else 35.0))
    ext = half + 45.0  # terrain (and a ring of trees) reach beyond the walkable area
    n = 73
    hs = _terrain(rng, ext, n, amp=(2.5 if forest else 1.6) * (0.6 + 0.8 * rng.random()))
    xs = np.linspace(-ext, ext, n)
    X, Y = np.meshgrid(xs, xs, indexing="ij")
    rim = np.maximum(np.maximum(np.abs(X), np.abs(Y)) - half, 0.0)
    hs = hs + 0.012 * rim ** 2  # hills rising around the area close the horizon
    curve = _path_curve(rng, half)
    terrain = (-ext, -ext, ext, ext, hs)
    b.terrain = terrain
    mesh = G.heightfield(-ext, -ext, ext, ext, hs)
    if forest:
        gcol, gcol2 = (0.25, 0.3, 0.13), (0.38, 0.3, 0.17)
        ground = b.material("forest_floor", "grass", gcol, gcol2, tile_m=3.0)
        pmat = b.material("dirt_trail", "dirt", (0.45, 0.35, 0.24), (0.3, 0.22, 0.14), tile_m=2.0)
        gdesc, pdesc = "a mossy forest floor", "a dirt trail"
    else:
        gcol = np.array([0.3, 0.55, 0.2]) * (0.85 + 0.3 * rng.random(3))
        ground = b.material("lawn", "grass", gcol, gcol * 1.35, tile_m=2.0)
        pmat = b.material("gravel_path", "gravel", (0.72, 0.67, 0.58), (0.5, 0.46, 0.4), tile_m=1.5)
        gdesc, pdesc = "rolling grassy lawns", "a gravel path"
    centers = mesh.vertices[mesh.triangles].mean(1)
    on_path = (_dist_to_curve(centers[:, :2].astype(np.float64), curve) < 1.6) & \
        (np.abs(centers[:, :2]).max(1) < half)
    go = b.obj("terrain", gdesc, ground)
    b.part(go, ground, G.MeshPart(mesh.vertices, mesh.triangles[~on_path], mesh.uv[~on_path]))
    po = b.obj("path", pdesc, pmat)
    b.part(po, pmat, G.MeshPart(mesh.vertices, mesh.triangles[on_path], mesh.uv[on_path]))
    def hz(x, y):
        return float(terrain_height(terrain, np.array([x]), np.array([y]))[0])

    occupied: list[tuple[float, float, float]] = []

    def free_spot(r, min_path=2.5, tries=40):
        for _ in range(tries):
            x, y = (rng.random(2) * 2 - 1) * (half - 2)
            if _dist_to_curve(np.array([[x, y]]), curve)[0] < min_path + r:
                continue
            if any((x - a) ** 2 + (y - c) ** 2 < (r + rr) ** 2 for a, c, rr in occupied):
                continue
            occupied.append((x, y, r))
            return x, y
        return None

    items = []
    # pond (park)
    if not forest:
        spot = free_spot(5.0, min_path=3.0)
        if spot is not None:
            x, y = spot
            rad = 3.0 + 2.0 * rng.random()
            zs = [hz(x + rad * math.cos(a), y + rad * math.sin(a)) for a in np.linspace(0, 6.28, 12)]
            water = b.material("pond_water", "water", (0.2, 0.38, 0.45), (0.35, 0.55, 0.6), tile_m=4.0)
            o = b.obj("pond", "a small pond", water)
            b.part(o, water, G.cylinder((x, y, min(zs) - 1.0), rad, max(zs) - min(zs) + 1.05, 24))
            b.cyl_collider((x, y, min(zs) - 1.0), rad, max(zs) - min(zs) + 1.05)
            items.append("a small pond")
    n_trees = int(params.get("trees", (160 + rng.integers(0, 80)) if forest else (25 + rng.integers(0, 25))))
    kinds = ["conifer", "conifer", "broadleaf", "birch"] if forest else ["broadleaf", "broadleaf", "birch", "conifer"]
    tree_descs = {}
    for _ in range(n_trees):
        spot = free_spot(1.2 if forest else 2.5, min_path=1.8)
        if spot is None:
            continue
        k = kinds[int(rng.integers(len(kinds)))]
        d = _tree(b, rng, (spot[0], spot[1], hz(*spot)), k, scale=0.8 + 0.5 * rng.random())
        tree_descs[d] = tree_descs.get(d, 0) + 1
    # a ring of trees outside the walkable area (no colliders: the camera cannot get there)
    n_ring = int((260 if forest else 90) * (0.8 + 0.4 * rng.random()))
    placed = 0
    for _ in range(n_ring * 4):
        if placed >= n_ring:
            break
        x, y = (rng.random(2) * 2 - 1) * (ext - 8)
        if max(abs(x), abs(y)) < half + 1.0:
            continue
        if any((x - a) ** 2 + (y - c) ** 2 < 9.0 for a, c, rr in occupied[-40:]):
            continue
        occupied.append((x, y, 1.5))
        _tree(b, rng, (x, y, hz(x, y)), kinds[int(rng.integers(len(kinds)))], scale=0.9 + 0.5 * rng.random(),
              collide=False)
        placed += 1
    # bushes and rocks
    rock = b.material("rock", "concrete", (0.5, 0.5, 0.48), (0.35, 0.35, 0.33), tile_m=2.0)
    bush = b.material("bush_leaves", "leaves", (0.16, 0.38, 0.12), (0.3, 0.5, 0.18), tile_m=1.0)
    for _ in range(int(rng.integers(8, 20))):
        spot = free_spot(1.0)
        if spot is None:
            continue
        if rng.random() < 0.5:
            o = b.obj("bush", "a round bush", bush, caster=True)
            r = 0.5 + 0.5 * rng.random()
            c = (spot[0], spot[1], hz(*spot) + r * 0.4)
            b.part(o, bush, G.sphere(c, r, squash=0.7, jitter=rng))
        else:
            o = b.obj("rock", "a grey boulder", rock, caster=True)
            r = 0.4 + 0.7 * rng.random()
            c = (spot[0], spot[1], hz(*spot))
            b.part(o, rock, G.sphere(c, r, rings=4, segments=7, squash=0.6, jitter=rng))
        b.sphere_collider(c, r * 0.8)
    if forest:
        for _ in range(int(rng.integers(3, 8))):
            spot = free_spot(2.0)
            if spot is None:
                continue
            bark = b.material("bark_broadleaf", "bark", (0.38, 0.27, 0.18), (0.22, 0.15, 0.1), tile_m=1.0)
            o = b.obj("log", "a fallen log", bark, caster=True)
            ln, r = 2.5 + 2 * rng.random(), 0.2 + 0.15 * rng.random()
            yaw = rng.random() * math.pi
            cyl = G.cylinder((0, 0, -ln / 2), r, ln, 8)
            rot = G.rot_z(yaw) @ np.array([[0, 0, 1.0], [0, 1.0, 0], [-1.0, 0, 0]])
            z = hz(*spot) + r * 0.7
            b.part(o, bark, cyl.transformed(rot, (spot[0], spot[1], z)))
            b.box_collider((spot[0], spot[1], z), (ln, 2 * r, 2 * r), yaw)
        items.append("fallen logs")
    else:
        wood, _ = F.wood_material(b, rng)
        metal = b.material("black_metal", "metal", (0.1, 0.1, 0.1), tile_m=1.0)
        lamp_glass = b.material("lamp_glass", "light", (1.0, 0.95, 0.8), tile_m=1.0)
        for i in range(int(rng.integers(4, 9))):
            k = int(rng.integers(10, len(curve) - 10))
            p0, p1 = curve[k], curve[k + 1]
            tang = (p1 - p0) / np.linalg.norm(p1 - p0)
            nrm = np.array([-tang[1], tang[0]]) * (1 if rng.random() < 0.5 else -1)
            pos = p0 + nrm * 2.2
            if any((pos[0] - a) ** 2 + (pos[1] - c) ** 2 < (1.2 + rr) ** 2 for a, c, rr in occupied):
                continue
            occupied.append((pos[0], pos[1], 1.0))
            yaw = math.atan2(-nrm[0], nrm[1]) + math.pi  # face the path
            z = hz(*pos)
            if rng.random() < 0.6:
                o = b.obj("bench", "a wooden park bench", wood, caster=True)
                pl = F.Placer(b, (pos[0], pos[1], z), yaw, rng)
                pl.box(o, wood, (0, 0, 0.45), (1.6, 0.45, 0.06))
                pl.box(o, wood, (0, -0.22, 0.75), (1.6, 0.05, 0.4))
                for sx in (-0.7, 0.7):
                    pl.box(o, metal, (sx, 0, 0.22), (0.06, 0.45, 0.45))
                pl.collider((0, 0, 0.5), (1.7, 0.55, 1.0))
                items.append("wooden benches")
            else:
                o = b.obj("lamp_post", "a black lamp post", metal, caster=True)
                b.part(o, metal, G.cylinder((pos[0], pos[1], z - 0.2), 0.07, 3.6, 8))
                b.part(o, lamp_glass, G.sphere((pos[0], pos[1], z + 3.6), 0.22))
                b.cyl_collider((pos[0], pos[1], z - 0.2), 0.1, 3.8)
                items.append("lamp posts")
    _sky(b, rng, haze=0.02 if forest else 0.006, forest=forest)
    items = list(dict.fromkeys(items))
    trees = ", ".join(f"{d.replace('a ', '', 1)}s" if c > 1 else d for d, c in tree_descs.items())
    what = "A forest" if forest else "A park"
    description = f"{what} with {gdesc}, {pdesc}, {trees}" + ("".join(f", {i}" for i in items)) + "."
    zmin, zmax = float(hs.min()), float(hs.max())
    cands = []
    for k in (len(curve) // 2, len(curve) // 3, 2 * len(curve) // 3, 20, len(curve) - 20):
        x, y = curve[k]
        cands.append((x, y, hz(x, y) + EYE))
    spec = procedural_spec(family, seed, params)
    return b.build(description=description, bounds_min=(-half + 1, -half + 1, zmin + 0.3),
                   bounds_max=(half - 1, half - 1, zmax + EYE + 4.0), camera_height=EYE,
                   spawn_candidates=cands, spec=spec, rng=rng)


# --------------------------------------------------------------------------------- street
def _building(b: SceneBuilder, rng, x0, x1, y_front, depth, side: int, window_mat) -> str:
    """A building whose street facade is the plane y = y_front, extending away (side = +1/-1)."""
    h = 6 + 22 * rng.random() ** 1.5
    style = ["brick", "plaster", "concrete", "glass"][int(rng.integers(4))]
    if style == "brick":
        col, cname = F._c(rng, ["terracotta", "red", "brown", "tan", "beige"])
        mat = b.material(f"facade_{len(b.materials)}", "brick", col, (0.8, 0.78, 0.72), tile_m=1.6)
        desc = f"a {cname} brick building"
    elif style == "plaster":
        col, cname = F._c(rng, ["cream", "beige", "pink", "mustard", "sky blue", "mint", "white", "terracotta"])
        mat = b.material(f"facade_{len(b.materials)}", "plaster", col, col, tile_m=3.0)
        desc = f"a {cname} plastered building"
    elif style == "concrete":
        mat = b.material(f"facade_{len(b.materials)}", "concrete", (0.62, 0.62, 0.6), (0.5, 0.5, 0.5), tile_m=3.0)
        desc = "a grey concrete building"
    else:
        mat = b.material(f"facade_{len(b.materials)}", "glass_facade", (0.2, 0.22, 0.25),
                         tuple(np.array([0.25, 0.38, 0.5]) * (0.8 + 0.4 * rng.random(3))), tile_m=3.0)
        desc = "a glass office tower"
        h = 15 + 20 * rng.random()
    o = b.obj("building", desc, mat, caster=True)
    yc = y_front + side * depth / 2
    b.box(o, mat, ((x0 + x1) / 2, yc, h / 2), (x1 - x0, depth, h))
    front_face = 3 if side > 0 else 2  # facade normal points toward the street (-side in y)
    if style != "glass":
        trim = b.material("trim_white", "paint", (0.9, 0.9, 0.88), tile_m=1.0)
        floors = int((h - 1.0) // 3.2)
        ncol = int((x1 - x0 - 1.0) // 2.6)
        for f in range(1, floors):
            for c in range(ncol):
                wx = x0 + 1.0 + (c + 0.5) * (x1 - x0 - 2.0) / ncol
                wz = f * 3.2 + 1.5
                b.box(o, window_mat, (wx, y_front - side * 0.03, wz), (1.2, 0.06, 1.6), collide=False,
                      uv_mode="unit", faces=(front_face,))
                b.box(o, trim, (wx, y_front - side * 0.06, wz - 0.85), (1.4, 0.12, 0.1), collide=False)
        # ground floor: door + shop window/awning
        door = b.material("door_wood", "wood", (0.35, 0.2, 0.12), (0.25, 0.14, 0.08), tile_m=1.0)
        dx = x0 + 1.0 + rng.random() * (x1 - x0 - 2.5)
        b.box(o, door, (dx + 0.6, y_front - side * 0.03, 1.1), (1.2, 0.06, 2.2), collide=False)
        if rng.random() < 0.6 and x1 - x0 > 7:
            col, cname = F._c(rng, ["red", "green", "navy", "mustard", "teal", "orange", "crimson"])
            awn = b.material(f"awning_{len(b.materials)}", "fabric", col, (0.95, 0.95, 0.9), tile_m=1.0, pattern="stripes")
            sx0 = dx + 2.0 if dx + 6 < x1 else x0 + 0.8
            sw = min(4.0, x1 - sx0 - 0.5)
            if sw > 1.5:
                b.box(o, window_mat, (sx0 + sw / 2, y_front - side * 0.03, 1.5), (sw, 0.06, 1.8), collide=False,
                      uv_mode="unit", faces=(front_face,))
                b.box(o, awn, (sx0 + sw / 2, y_front - side * 0.6, 2.75), (sw + 0.4, 1.2, 0.08), collide=False)
                desc += f" with a {cname} shop awning"
    return desc


def _car(b: SceneBuilder, rng, x, y, yaw) -> str:
    col, cname = F._c(rng, ["red", "blue", "white", "black", "grey", "green", "yellow", "navy", "crimson", "sky blue"])
    paint = b.material(f"carpaint_{len(b.materials)}", "metal", col, col, tile_m=2.0)
    glass = b.material("car_glass", "metal", (0.15, 0.18, 0.22), tile_m=1.0)
    tyre = b.material("tyre", "paint", (0.06, 0.06, 0.06), tile_m=1.0)
    kind = ["car", "hatchback", "van"][int(rng.integers(3))]
    desc = f"a parked {cname} {kind}"
    o = b.obj("car", desc, paint, caster=True)
    p = F.Placer(b, (x, y, 0.0), yaw, rng)
    L = {"car": 4.4, "hatchback": 3.8, "van": 5.0}[kind]
    Hc = 1.9 if kind == "van" else 1.45
    p.box(o, paint, (0, 0, 0.6), (1.8, L, 0.65))
    cab_l = L * (0.85 if kind == "van" else 0.5)
    p.box(o, glass, (0, -0.1 if kind != "van" else 0.0, 0.93 + (Hc - 0.93) / 2), (1.6, cab_l, Hc - 0.93))
    p.box(o, paint, (0, -0.1 if kind != "van" else 0.0, Hc - 0.03), (1.62, cab_l - 0.1, 0.06))
    for sx in (-0.85, 0.85):
        for sy in (-L / 2 + 0.75, L / 2 - 0.75):
            w = G.cylinder((0, 0, -0.12), 0.33, 0.24, 10)
            rot = G.rot_z(yaw) @ np.array([[0, 0, 1.0], [0, 1.0, 0], [-1.0, 0, 0]])
            b.part(o, tyre, w.transformed(rot, p.world((sx, sy, 0.33))))
    p.collider((0, 0, Hc / 2), (1.9, L, Hc))
    return desc


def generate_street(seed: int, params: dict):
    rng = np.random.default_rng([seed, 5, 13])
    b = SceneBuilder("street", seed)
    L = float(params.get("length", 70.0 + 30.0 * rng.random()))
    road_w = 7.0 + 3.0 * rng.random()
    walk_w = 3.0 + 1.5 * rng.random()
    half = L / 2
    asphalt = b.material("asphalt", "asphalt", (0.25, 0.25, 0.26), (0.4, 0.4, 0.4), tile_m=3.0)
    marking = b.material("lane_marking", "road_marking", (0.25, 0.25, 0.26), (0.92, 0.9, 0.8), tile_m=6.0)
    pave_col, pave_name = F._c(rng, ["grey", "beige", "terracotta", "tan"])
    paving = b.material("paving", "paving", pave_col, (0.35, 0.35, 0.35), tile_m=1.2, n=2)
    curb = b.material("curb", "concrete", (0.65, 0.65, 0.63), (0.5, 0.5, 0.5), tile_m=1.0)
    go = b.obj("ground", "paved ground", curb)
    b.box(go, curb, (0, 0, -0.3), (L + 60, 2 * (road_w / 2 + walk_w) + 40, 0.2), collide=False, faces=(4,))
    ro = b.obj("road", "an asphalt road", asphalt)
    b.box(ro, asphalt, (0, 0, -0.1), (L + 40, road_w, 0.2))
    mo = b.obj("road_marking", "a dashed centre line", marking)
    b.box(mo, marking, (0, 0, 0.002), (L + 40, 0.6, 0.004), collide=False, faces=(4,))
    y_bld = road_w / 2 + walk_w
    # zebra crossings
    zebra = b.material("zebra_white", "paint", (0.9, 0.9, 0.86), tile_m=1.0)
    for xc in sorted({float(round((rng.random() - 0.5) * L * 0.6)) for _ in range(int(rng.integers(1, 3)))}):
        zo = b.obj("crosswalk", "a zebra crossing", zebra)
        for k in range(int(road_w / 0.9)):
            yk = -road_w / 2 + 0.45 + k * 0.9
            b.box(zo, zebra, (xc, yk, 0.003), (3.0, 0.45, 0.006), collide=False, faces=(4,))
    for side in (-1, 1):
        so = b.obj("sidewalk", f"a {pave_name} paved sidewalk", paving)
        b.box(so, paving, (0, side * (road_w / 2 + walk_w / 2), 0.075), (L + 40, walk_w, 0.15))
        b.box(so, curb, (0, side * (road_w / 2 + 0.1), 0.08), (L + 40, 0.2, 0.16), collide=False)
    window_mat = b.material("facade_window", "window", (0.85, 0.85, 0.82), tile_m=1.0,
                            sky=(0.35, 0.45, 0.55))
    descs = []
    for side in (-1, 1):
        x = -half - 10
        while x < half + 10:
            w = 8 + 12 * rng.random()
            gap = 0.0 if rng.random() < 0.7 else 2 + 3 * rng.random()
            descs.append(_building(b, rng, x, min(x + w, half + 12), side * y_bld, 12.0, side, window_mat))
            x += w + gap
    # buildings closing both ends
    for end in (-1, 1):
        bmat = b.material(f"facade_end_{end}", "brick", (0.6, 0.35, 0.25), (0.8, 0.78, 0.72), tile_m=1.6)
        o = b.obj("building", "a brick building closing the street", bmat, caster=True)
        b.box(o, bmat, (end * (half + 6), 0, 10), (4, 2 * y_bld + 4, 20))
    descs = [d for d in descs if d]
    # props on sidewalks
    metal = b.material("black_metal", "metal", (0.12, 0.12, 0.12), tile_m=1.0)
    lamp_glass = b.material("lamp_glass", "light", (1.0, 0.95, 0.8), tile_m=1.0)
    props = []
    for side in (-1, 1):
        yl = side * (road_w / 2 + 0.6)
        for x in np.arange(-half + 4 + 4 * rng.random(), half - 2, 14 + 6 * rng.random()):
            o = b.obj("street_lamp", "a street lamp", metal, caster=True)
            b.part(o, metal, G.cylinder((x, yl, 0.15), 0.08, 5.5, 8))
            b.box(o, metal, (x, yl - side * 0.6, 5.6), (0.3, 1.3, 0.12), collide=False)
            b.box(o, lamp_glass, (x, yl - side * 1.0, 5.52), (0.25, 0.4, 0.04), collide=False)
            b.cyl_collider((x, yl, 0.0), 0.12, 5.7)
        props.append("street lamps")
        for x in np.arange(-half + 8 + 6 * rng.random(), half - 4, 10 + 10 * rng.random()):
            if rng.random() < 0.6:
                _tree(b, rng, (x, side * (road_w / 2 + walk_w * 0.55), 0.15), "broadleaf", scale=0.8)
                props.append("trees along the sidewalk")
            else:
                wood, _ = F.wood_material(b, rng)
                o = b.obj("bench", "a street bench", wood, caster=True)
                yb = side * (road_w / 2 + walk_w * 0.55)
                pl = F.Placer(b, (x, yb, 0.15), 0.0 if side < 0 else math.pi, rng)
                pl.box(o, wood, (0, 0, 0.45), (1.6, 0.45, 0.06))
                pl.box(o, wood, (0, -0.22, 0.75), (1.6, 0.05, 0.4))
                for sx in (-0.7, 0.7):
                    pl.box(o, metal, (sx, 0, 0.22), (0.06, 0.45, 0.45))
                pl.collider((0, 0, 0.5), (1.7, 0.55, 1.0))
                props.append("benches")
        # parked cars along the curb
        x = -half + 3 + 5 * rng.random()
        while x < half - 5:
            if rng.random() < 0.55:
                props.append(_car(b, rng, x, side * (road_w / 2 - 1.2), math.pi / 2 + (0 if side > 0 else math.pi)))
            x += 5.5 + 4 * rng.random()
    _sky(b, rng, haze=0.008)
    uniq = list(dict.fromkeys(descs))[:4]
    cars = [p for p in props if p.startswith("a parked")][:3]
    other = [p for p in dict.fromkeys(props) if not p.startswith("a parked")]
    description = (f"A city street: an asphalt road with a dashed centre line and zebra crossings between "
                   f"{pave_name} sidewalks, "
                   f"lined by " + ", ".join(uniq) + "; " + ", ".join(cars + other) + ".")
    cands = [(x, y, EYE + 0.15) for x, y in ((0, road_w / 2 + walk_w / 2), (5, -(road_w / 2 + walk_w / 2)),
                                            (-8, road_w / 2 + walk_w / 2), (0, 0))]
    spec = procedural_spec("street", seed, params)
    return b.build(description=description, bounds_min=(-half, -y_bld + 0.3, 0.3),
                   bounds_max=(half, y_bld - 0.3, 8.0), camera_height=EYE, spawn_candidates=cands, spec=spec, rng=rng)


def generate(family: str, seed: int, params: dict | None = None):
    params = dict(params or {})
    if family == "street":
        return generate_street(seed, params)
    return generate_nature(family, seed, params)
