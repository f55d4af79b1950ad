"""Multi-room interiors: the "apartment" and "office" families.

Layout: a grid of nx x ny rectangular rooms (random widths) under one ceiling. Every room
draws its own half of each wall (so two sides of a shared wall can have different paint); a
door opening (0.9-1.6 m wide, 2.1 m high) joins every pair of neighbouring rooms, so all rooms
are connected; outer walls get windows (emissive sky panels). Furniture is placed per room type
against walls or in the room, never in front of doors, with rectangle overlap rejection.
Floor at z = 0, ceiling at z = H. Walkable volume: the footprint, z in [0.25, H - 0.25].
"""
from __future__ import annotations

import math

import numpy as np

from datagen.scenes import geometry as G
from datagen.scenes.builder import SceneBuilder
from datagen.scenes.families import furniture as F
from datagen.scenes.procedural import procedural_spec

WALL_T = 0.06  # each room's half of a wall (m): a shared wall is 0.12 m thick
DOOR_H = 2.1

SIDES = {  # side: (axis along the side, inward normal, item yaw that faces inward)
    "S": (0, (0.0, 1.0), 0.0), "N": (0, (0.0, -1.0), math.pi),
    "W": (1, (1.0, 0.0), -math.pi / 2), "E": (1, (-1.0, 0.0), math.pi / 2),
}

APARTMENT_ROOMS = ["living room", "kitchen", "bedroom", "bathroom", "study", "dining room", "bedroom"]
OFFICE_ROOMS = ["open office", "meeting room", "lobby", "kitchenette", "private office", "open office"]


class Room:
    def __init__(self, i, j, x0, x1, y0, y1, kind):
        self.i, self.j, self.x0, self.x1, self.y0, self.y1, self.kind = i, j, x0, x1, y0, y1, kind
        self.openings = {s: [] for s in SIDES}  # side -> [(pos_from_start, width, z0, z1, kind)]
        self.rects: list[tuple[float, float, float, float]] = []  # occupied (xa, ya, xb, yb)
        self.keepout: list[tuple[float, float, float, float]] = []
        self.tall_spans = {s: [] for s in SIDES}
        self.items: list[str] = []

    def side_geom(self, side):
        """(start point (x, y), length, along-axis) of a side's inner wall line."""
        ax = SIDES[side][0]
        if side == "S":
            return (self.x0, self.y0 + WALL_T), self.x1 - self.x0, ax
        if side == "N":
            return (self.x0, self.y1 - WALL_T), self.x1 - self.x0, ax
        if side == "W":
            return (self.x0 + WALL_T, self.y0), self.y1 - self.y0, ax
        return (self.x1 - WALL_T, self.y0), self.y1 - self.y0, ax

    @property
    def area(self):
        return (self.x1 - self.x0) * (self.y1 - self.y0)


def _overlap(a, b, margin=0.05):
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def _rect(pos, yaw, w, d):
    quarter = int(round(yaw / (math.pi / 2))) % 2
    hw, hd = (w / 2, d / 2) if quarter == 0 else (d / 2, w / 2)
    return (pos[0] - hw, pos[1] - hd, pos[0] + hw, pos[1] + hd)


def _free(room: Room, r) -> bool:
    inner = (room.x0 + WALL_T - 1e-6, room.y0 + WALL_T - 1e-6, room.x1 - WALL_T + 1e-6, room.y1 - WALL_T + 1e-6)
    if r[0] < inner[0] or r[1] < inner[1] or r[2] > inner[2] or r[3] > inner[3]:
        return False
    return not any(_overlap(r, o) for o in room.rects + room.keepout)


def place_against_wall(b, room: Room, rng, fp_key, maker, tall=False, tries=30, sides=None, **kw):
    w, d = F.FOOTPRINTS[fp_key]
    for _ in range(tries):
        side = (sides or list(SIDES))[int(rng.integers(len(sides or SIDES)))]
        (sx, sy), length, ax = room.side_geom(side)
        if length < w + 0.3:
            continue
        s = 0.15 + w / 2 + rng.random() * (length - w - 0.3)
        nrm = np.array(SIDES[side][1])
        along = np.array([1.0, 0.0]) if ax == 0 else np.array([0.0, 1.0])
        pos2 = np.array([sx, sy]) + along * s + nrm * (d / 2 + 0.01)
        yaw = SIDES[side][2]
        r = _rect(pos2, yaw, w, d)
        if not _free(room, r):
            continue
        if tall and any(not (s + w / 2 < a or s - w / 2 > bb) for a, bb in
                        [(o[0], o[0] + o[1]) for o in room.openings[side] if o[4] == "window"]):
            continue
        room.rects.append(r)
        if tall:
            room.tall_spans[side].append((s - w / 2, s + w / 2))
        p = F.Placer(b, (pos2[0], pos2[1], 0.0), yaw, rng)
        desc = maker(p, **kw)
        room.items.append(desc)
        return p
    return None


def place_free(b, room: Room, rng, pos2, yaw, fp_key, maker, extra=0.0, **kw):
    w, d = F.FOOTPRINTS[fp_key]
    r = _rect(pos2, yaw, w + extra, d + extra)
    if not _free(room, r):
        return None
    room.rects.append(r)
    p = F.Placer(b, (pos2[0], pos2[1], 0.0), yaw, rng)
    room.items.append(maker(p, **kw))
    return p


def _rug(b, room, rng, center, size):
    col, cname = F._c(rng, ["red", "navy", "beige", "teal", "terracotta", "grey", "mustard", "sage"])
    col2, _ = F._c(rng, ["cream", "charcoal", "white"])
    mat = b.material(f"rug_{len(b.materials)}", "fabric", col, col2, tile_m=0.8,
                     pattern=["check", "stripes", "plain"][int(rng.integers(3))])
    o = b.obj("rug", f"a {cname} rug", mat)
    b.box(o, mat, (center[0], center[1], 0.005), (size[0], size[1], 0.01), collide=False)
    room.items.append(f"a {cname} rug")


def _furnish_apartment(b, room: Room, rng):
    k = room.kind
    cx, cy = (room.x0 + room.x1) / 2, (room.y0 + room.y1) / 2
    if k == "living room":
        p = place_against_wall(b, room, rng, "sofa", F.make_sofa)
        if p is not None:
            front = p.world((0, 1.25, 0))[:2]
            _rug(b, room, rng, front, (2.2, 1.5))
            place_free(b, room, rng, front, p.yaw, "coffee_table", F.make_table, kind="coffee_table")
        place_against_wall(b, room, rng, "tv", F.make_tv)
        place_against_wall(b, room, rng, "armchair", F.make_sofa, armchair=True)
        place_against_wall(b, room, rng, "bookshelf", F.make_bookshelf, tall=True)
        place_against_wall(b, room, rng, "plant", F.make_plant)
        place_against_wall(b, room, rng, "floor_lamp", F.make_floor_lamp)
    elif k == "kitchen":
        place_against_wall(b, room, rng, "counter", F.make_counter, tall=True)
        place_against_wall(b, room, rng, "fridge", F.make_fridge, tall=True)
        place_free(b, room, rng, (cx, cy), 0.0 if rng.random() < 0.5 else math.pi / 2, "dining_table",
                   F.make_table, extra=1.0, kind="dining_table", chairs=4)
        place_against_wall(b, room, rng, "plant", F.make_plant)
    elif k == "dining room":
        place_free(b, room, rng, (cx, cy), 0.0 if rng.random() < 0.5 else math.pi / 2, "dining_table",
                   F.make_table, extra=1.0, kind="dining_table", chairs=6)
        place_against_wall(b, room, rng, "cabinet", F.make_small_cabinet, cat="sideboard")
        place_against_wall(b, room, rng, "plant", F.make_plant)
        place_against_wall(b, room, rng, "bookshelf", F.make_bookshelf, tall=True)
    elif k == "bedroom":
        p = place_against_wall(b, room, rng, "bed", F.make_bed)
        if p is not None:
            for sx in (-1, 1):
                pos = p.world((sx * 1.08, -0.8, 0))[:2]
                place_free(b, room, rng, pos, p.yaw, "nightstand", F.make_small_cabinet, cat="nightstand")
            _rug(b, room, rng, p.world((0, 1.3, 0))[:2], (1.8, 0.9))
        place_against_wall(b, room, rng, "wardrobe", F.make_wardrobe, tall=True)
        place_against_wall(b, room, rng, "plant", F.make_plant)
    elif k == "bathroom":
        place_against_wall(b, room, rng, "bathtub", F.make_bathtub)
        place_against_wall(b, room, rng, "sink", F.make_sink)
        place_against_wall(b, room, rng, "toilet", F.make_toilet)
        place_against_wall(b, room, rng, "plant", F.make_plant)
    elif k == "study":
        place_against_wall(b, room, rng, "desk", F.make_desk)
        place_against_wall(b, room, rng, "bookshelf", F.make_bookshelf, tall=True)
        place_against_wall(b, room, rng, "bookshelf", F.make_bookshelf, tall=True)
        place_against_wall(b, room, rng, "armchair", F.make_sofa, armchair=True)
        place_against_wall(b, room, rng, "plant", F.make_plant)


def _furnish_office(b, room: Room, rng):
    k = room.kind
    cx, cy = (room.x0 + room.x1) / 2, (room.y0 + room.y1) / 2
    if k == "open office":
        part_col, _ = F._c(rng, ["grey", "navy", "teal", "sage", "charcoal", "terracotta", "mustard"])
        pmat = b.material(f"partition_{len(b.materials)}", "fabric", part_col, tile_m=0.5)
        # desk clusters (4 desks facing each other across a partition, 3.0 x 2.5 m) on a grid
        # of candidate centres, greedily where they fit (clear of walls, doors and windows)
        ox, oy = rng.random() * 0.6, rng.random() * 0.6
        for x in np.arange(room.x0 + WALL_T + 1.6 + ox, room.x1 - WALL_T - 1.5, 3.4):
            for y in np.arange(room.y0 + WALL_T + 1.4 + oy, room.y1 - WALL_T - 1.25, 2.9):
                cluster = (x - 1.5, y - 1.25, x + 1.5, y + 1.25)
                if not _free(room, cluster):
                    continue
                room.rects.append((cluster[0] - 0.4, cluster[1] - 0.4, cluster[2] + 0.4, cluster[3] + 0.4))
                for sx in (-0.75, 0.75):
                    for sgn in (1, -1):
                        yaw = 0.0 if sgn > 0 else math.pi
                        F.make_desk(F.Placer(b, (x + sx, y - sgn * 0.41, 0.0), yaw, rng))
                F.make_partition(F.Placer(b, (x, y, 0.0), 0.0, rng), pmat)
                room.items.append("a cluster of desks with monitors")
        place_against_wall(b, room, rng, "plant", F.make_plant)
        place_against_wall(b, room, rng, "cabinet", F.make_small_cabinet, cat="filing cabinet")
        place_against_wall(b, room, rng, "cooler", F.make_cooler)
    elif k == "meeting room":
        place_free(b, room, rng, (cx, cy), 0.0 if (room.x1 - room.x0) > (room.y1 - room.y0) else math.pi / 2,
                   "meeting_table", F.make_table, extra=1.0, kind="meeting_table", chairs=6)
        place_against_wall(b, room, rng, "whiteboard", F.make_whiteboard)
        place_against_wall(b, room, rng, "tv", F.make_tv)
        place_against_wall(b, room, rng, "plant", F.make_plant)
    elif k == "lobby":
        place_against_wall(b, room, rng, "reception", _make_reception)
        place_against_wall(b, room, rng, "sofa", F.make_sofa)
        place_against_wall(b, room, rng, "sofa", F.make_sofa)
        place_against_wall(b, room, rng, "plant", F.make_plant)
        place_against_wall(b, room, rng, "plant", F.make_plant)
    elif k == "kitchenette":
        place_against_wall(b, room, rng, "counter", F.make_counter, tall=True)
        place_against_wall(b, room, rng, "fridge", F.make_fridge, tall=True)
        place_free(b, room, rng, (cx, cy), 0.0, "dining_table", F.make_table, extra=1.0, kind="dining_table",
                   chairs=4)
        place_against_wall(b, room, rng, "cooler", F.make_cooler)
    elif k == "private office":
        place_against_wall(b, room, rng, "desk", F.make_desk)
        place_against_wall(b, room, rng, "bookshelf", F.make_bookshelf, tall=True)
        place_against_wall(b, room, rng, "armchair", F.make_sofa, armchair=True)
        place_against_wall(b, room, rng, "plant", F.make_plant)
        place_against_wall(b, room, rng, "cabinet", F.make_small_cabinet, cat="filing cabinet")


def _make_reception(p: F.Placer) -> str:
    b, rng = p.b, p.rng
    mat, wdesc = F.wood_material(b, rng)
    top = b.material("counter_top", "marble", (0.9, 0.9, 0.88), (0.45, 0.45, 0.47), tile_m=1.0)
    desc = f"a {wdesc} reception desk"
    o = b.obj("reception_desk", desc, mat, caster=True)
    w, d = F.FOOTPRINTS["reception"]
    p.box(o, mat, (0, 0.2, 0.55), (w, 0.3, 1.1))
    p.box(o, top, (0, 0.2, 1.12), (w + 0.05, 0.4, 0.04))
    p.box(o, mat, (0, -0.15, 0.37), (w, 0.5, 0.04))
    p.collider((0, 0, 0.56), (w, d, 1.12))
    return desc


def _wall_material(b, rng, room_kind: str, office: bool) -> tuple[str, str]:
    r = rng.random()
    if room_kind in ("bathroom",) or (room_kind in ("kitchen", "kitchenette") and r < 0.5):
        col, cname = F._c(rng, ["white", "sky blue", "mint", "cream", "grey", "turquoise"])
        return b.material(f"walltile_{len(b.materials)}", "tiles", col, (0.85, 0.85, 0.83), tile_m=0.8, n=4), \
            f"{cname} tiled walls"
    if r < 0.12:
        col, cname = F._c(rng, ["terracotta", "red", "brown", "tan"])
        return b.material(f"brick_{len(b.materials)}", "brick", col, (0.8, 0.78, 0.72), tile_m=0.7), "exposed brick walls"
    if r < 0.25 and not office:
        col, cname = F._c(rng, ["sage", "lilac", "cream", "sky blue", "pink", "mustard", "beige"])
        col2, _ = F._c(rng, ["white", "cream", "tan"])
        return b.material(f"wallpaper_{len(b.materials)}", "fabric", col, col2, tile_m=0.9, pattern="stripes"), \
            f"{cname} striped wallpaper"
    names = (["white", "grey", "cream", "sky blue", "sage", "beige"] if office else
             ["white", "cream", "sage", "sky blue", "pink", "mint", "lilac", "beige", "mustard", "terracotta", "teal", "grey"])
    col, cname = F._c(rng, names)
    return b.material(f"wallpaint_{len(b.materials)}", "plaster", col, col, tile_m=2.0), f"{cname} walls"


def _floor_material(b, rng, room_kind: str, office: bool) -> tuple[str, str]:
    if room_kind in ("bathroom", "kitchen", "kitchenette"):
        col, cname = F._c(rng, ["white", "grey", "charcoal", "terracotta", "beige", "black"])
        col2, _ = F._c(rng, ["white", "black", "cream", "navy"])
        return b.material(f"floortile_{len(b.materials)}", "tiles", col, col2, tile_m=1.2, n=4,
                          checker=bool(rng.random() < 0.4)), f"a {cname} tiled floor"
    if office and room_kind in ("open office", "meeting room", "private office"):
        col, cname = F._c(rng, ["grey", "charcoal", "navy", "teal", "beige"])
        return b.material(f"carpet_{len(b.materials)}", "carpet", col, np.asarray(col) * 0.75, tile_m=1.0), \
            f"a {cname} carpet"
    if office and room_kind == "lobby":
        return b.material("lobby_marble", "marble", (0.92, 0.9, 0.86), (0.5, 0.48, 0.45), tile_m=2.5), "a marble floor"
    if room_kind == "bedroom" and rng.random() < 0.4:
        col, cname = F._c(rng, ["beige", "grey", "cream", "sage", "lilac"])
        return b.material(f"carpet_{len(b.materials)}", "carpet", col, np.asarray(col) * 0.8, tile_m=1.0), \
            f"a {cname} carpet"
    mat, wname = F.wood_material(b, rng)
    if rng.random() < 0.35:
        tone = b.materials[b._mat_index[mat]]
        return b.material(f"parquet_{wname}", "parquet", tone.color, tone.color2, tile_m=1.6), f"a {wname} parquet floor"
    return b.material(f"floor_{wname}", "wood", b.materials[b._mat_index[mat]].color,
                      b.materials[b._mat_index[mat]].color2, tile_m=1.0), f"a {wname} plank floor"


def _build_side(b, room: Room, side: str, wall_obj: int, mat: str, window_mat: str, H: float,
                trim_obj: int, trim_mat: str, door_obj: int, door_mat: str):
    (sx, sy), length, ax = room.side_geom(side)
    nrm = np.array(SIDES[side][1])
    along = np.array([1.0, 0.0]) if ax == 0 else np.array([0.0, 1.0])
    line0 = np.array([sx, sy]) - nrm * (WALL_T / 2)  # centre line of this room's half wall
    ops = sorted(room.openings[side])
    cuts, cur = [], 0.0
    for (pos, w, z0, z1, kind) in ops:
        cuts.append((cur, pos, 0.0, H))
        if z0 > 0:
            cuts.append((pos, pos + w, 0.0, z0))
        cuts.append((pos, pos + w, z1, H))
        cur = pos + w
    cuts.append((cur, length, 0.0, H))
    for (a, c, z0, z1) in cuts:
        if c - a < 1e-4 or z1 - z0 < 1e-4:
            continue
        mid = line0 + along * ((a + c) / 2)
        size = (c - a, WALL_T, z1 - z0) if ax == 0 else (WALL_T, c - a, z1 - z0)
        b.box(wall_obj, mat, (mid[0], mid[1], (z0 + z1) / 2), size)
    face = {"S": 2, "N": 3, "W": 0, "E": 1}[side]
    for (pos, w, z0, z1, kind) in ops:
        if not kind.startswith("door"):
            continue
        # casing: two jambs and a head, 7 cm wide, 2 cm proud of this room's wall face
        cen_off = nrm * (WALL_T / 2 + 0.01)
        for a0, a1, zz0, zz1 in ((pos - 0.07, pos, 0.0, z1 + 0.07), (pos + w, pos + w + 0.07, 0.0, z1 + 0.07),
                                 (pos, pos + w, z1, z1 + 0.07)):
            mid = line0 + along * ((a0 + a1) / 2) + cen_off
            size = (a1 - a0, 0.02, zz1 - zz0) if ax == 0 else (0.02, a1 - a0, zz1 - zz0)
            b.box(trim_obj, trim_mat, (mid[0], mid[1], (zz0 + zz1) / 2), size, collide=False)
        if kind == "door_leaf":
            mid = line0 + along * (pos - w / 2) + nrm * (WALL_T / 2 + 0.03)
            size = (w - 0.02, 0.04, z1 - 0.02) if ax == 0 else (0.04, w - 0.02, z1 - 0.02)
            b.box(door_obj, door_mat, (mid[0], mid[1], (z1 - 0.02) / 2 + 0.01), size)
    for (pos, w, z0, z1, kind) in ops:
        if kind != "window":
            continue
        o = b.obj("window", "a window", window_mat)
        mid = line0 + along * (pos + w / 2)
        size = (w, WALL_T * 0.5, z1 - z0) if ax == 0 else (WALL_T * 0.5, w, z1 - z0)
        b.box(o, window_mat, (mid[0], mid[1], (z0 + z1) / 2), size, uv_mode="unit", faces=(face,))
        # sill
        sill = b.material("sill_white", "paint", (0.92, 0.92, 0.9), tile_m=1.0)
        sp = line0 + along * (pos + w / 2) + nrm * (WALL_T / 2 + 0.04)
        ssize = (w + 0.1, 0.12, 0.04) if ax == 0 else (0.12, w + 0.1, 0.04)
        b.box(o, sill, (sp[0], sp[1], z0 - 0.02), ssize, collide=False)


def generate(family: str, seed: int, params: dict | None = None):
    params = dict(params or {})
    office = family == "office"
    rng = np.random.default_rng([seed, 1 if office else 0, 7])
    b = SceneBuilder(family, seed)
    H = float(params.get("height", 3.0 if office else 2.7))
    nx = int(params.get("nx", rng.integers(2, 4)))
    ny = int(params.get("ny", 2))
    lo, hi = (5.0, 8.5) if office else (3.4, 5.6)
    ws = lo + (hi - lo) * rng.random(nx)
    ds = lo + (hi - lo) * rng.random(ny)
    xs = np.concatenate([[0.0], np.cumsum(ws)])
    ys = np.concatenate([[0.0], np.cumsum(ds)])
    program = list(OFFICE_ROOMS if office else APARTMENT_ROOMS)
    first, rest = program[0], program[1:]
    rng.shuffle(rest)
    kinds = [first] + rest
    rooms = []
    for j in range(ny):
        for i in range(nx):
            rooms.append(Room(i, j, xs[i], xs[i + 1], ys[j], ys[j + 1], kinds[len(rooms) % len(kinds)]))
    # sometimes an L-shaped plan: drop a corner cell (it becomes solid for collision)
    missing = None
    if nx * ny >= 6 and rng.random() < float(params.get("l_shape_prob", 0.4)):
        corners = [r for r in rooms if r.i in (0, nx - 1) and r.j in (0, ny - 1)]
        biggest = max(rooms, key=lambda r: r.area)
        corners = [r for r in corners if r is not biggest]
        missing = corners[int(rng.integers(len(corners)))]
        rooms.remove(missing)
        b.box_collider(((missing.x0 + missing.x1) / 2, (missing.y0 + missing.y1) / 2, H / 2),
                       (missing.x1 - missing.x0, missing.y1 - missing.y0, H + 1.0))
    # big rooms first for the living room / open office
    order = sorted(range(len(rooms)), key=lambda r: -rooms[r].area)
    kinds_sorted = [first] + rest
    for n, r in enumerate(order):
        rooms[r].kind = kinds_sorted[n % len(kinds_sorted)]
    grid = {(r.i, r.j): r for r in rooms}
    # doors between neighbours (same position seen from both rooms)
    for r in rooms:
        for (di, dj, side, other_side) in ((1, 0, "E", "W"), (0, 1, "N", "S")):
            o = grid.get((r.i + di, r.j + dj))
            if o is None:
                continue
            length = (r.y1 - r.y0) if side == "E" else (r.x1 - r.x0)
            w = 1.6 if (office and rng.random() < 0.4) else 0.9 + 0.2 * rng.random()
            pos = 0.4 + rng.random() * (length - w - 0.8)
            # a door leaf standing open against the wall of room o (when there is room for it)
            leaf = w < 1.3 and pos >= w + 0.15 and rng.random() < 0.7
            r.openings[side].append((pos, w, 0.0, DOOR_H, "door"))
            o.openings[other_side].append((pos, w, 0.0, DOOR_H, "door_leaf" if leaf else "door"))
    # windows on outer walls
    for r in rooms:
        for side in SIDES:
            di, dj = {"W": (-1, 0), "E": (1, 0), "S": (0, -1), "N": (0, 1)}[side]
            outer = (r.i + di, r.j + dj) not in grid
            if not outer:
                continue
            length = (r.x1 - r.x0) if side in ("S", "N") else (r.y1 - r.y0)
            n_win = int(min(3, max(0, (length - 0.6) // (2.2 if office else 2.6))))
            if n_win == 0 or rng.random() < 0.25:
                continue
            ww = (1.6 if office else 1.1) + 0.3 * rng.random()
            for k in range(n_win):
                pos = (k + 0.5) * length / n_win - ww / 2
                r.openings[side].append((pos, ww, 0.9 if not office else 0.8, min(H - 0.3, 2.3 if not office else 2.6),
                                         "window"))
    # keep-out zones in front of doors
    for r in rooms:
        for side, ops in r.openings.items():
            (sx, sy), length, ax = r.side_geom(side)
            nrm = np.array(SIDES[side][1])
            along = np.array([1.0, 0.0]) if ax == 0 else np.array([0.0, 1.0])
            for (pos, w, z0, z1, kind) in ops:
                depth = 1.1 if kind.startswith("door") else 0.35
                a = np.array([sx, sy]) + along * (pos - (w + 0.25 if kind == "door_leaf" else 0.2))
                c = np.array([sx, sy]) + along * (pos + w + 0.2) + nrm * depth
                r.keepout.append((min(a[0], c[0]), min(a[1], c[1]), max(a[0], c[0]), max(a[1], c[1])))
    sky = tuple(float(x) for x in (np.array([0.5, 0.7, 0.95]) * (0.9 + 0.2 * rng.random(3))))
    window_mat = b.material("window_glass", "window", (0.95, 0.95, 0.95), tile_m=1.0, sky=sky)
    ceiling = b.material("ceiling_white", "plaster", (0.93, 0.93, 0.91), tile_m=2.0)
    light_mat = b.material("ceiling_light", "light", (1.0, 0.98, 0.92), tile_m=1.0)
    trim_mat = b.material("trim_white", "paint", (0.93, 0.93, 0.9), tile_m=1.0)
    if rng.random() < 0.5:
        door_mat, dname = F.wood_material(b, rng)
        door_desc = f"{dname} doors"
    else:
        dcol, dname = F._c(rng, ["white", "grey", "navy", "sage", "cream", "charcoal"])
        door_mat = b.material("door_paint", "paint", dcol, tile_m=1.0)
        door_desc = f"{dname} painted doors"
    room_descs = []
    for r in rooms:
        wall_mat, wall_desc = _wall_material(b, rng, r.kind, office)
        floor_mat, floor_desc = _floor_material(b, rng, r.kind, office)
        fo = b.obj("floor", floor_desc, floor_mat)
        b.box(fo, floor_mat, ((r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2, -0.05), (r.x1 - r.x0, r.y1 - r.y0, 0.1))
        co = b.obj("ceiling", "a white ceiling", ceiling)
        b.box(co, ceiling, ((r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2, H + 0.05), (r.x1 - r.x0, r.y1 - r.y0, 0.1))
        lo_ = b.obj("ceiling_light", "a ceiling light", light_mat)
        if office:
            for lx in np.arange(r.x0 + 1.5, r.x1 - 1.0, 2.5):
                for ly in np.arange(r.y0 + 1.5, r.y1 - 1.0, 2.5):
                    b.box(lo_, light_mat, (lx, ly, H - 0.01), (1.2, 0.6, 0.02), collide=False)
        else:
            b.part(lo_, light_mat, G.cylinder(((r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2, H - 0.06), 0.25, 0.06, 16))
        wo = b.obj("wall", f"{wall_desc}", wall_mat)
        to = b.obj("door_frame", "white door frames", trim_mat)
        do = b.obj("door", door_desc, door_mat)
        for side in SIDES:
            _build_side(b, r, side, wo, wall_mat, window_mat, H, to, trim_mat, do, door_mat)
        if office:
            _furnish_office(b, r, rng)
        else:
            _furnish_apartment(b, r, rng)
        # art on walls: 1-3 paintings/posters on free stretches
        n_art = int(rng.integers(1, 4))
        art = []
        for _ in range(n_art * 6):
            if len(art) >= n_art:
                break
            side = list(SIDES)[int(rng.integers(4))]
            (sx, sy), length, ax = r.side_geom(side)
            aw = 0.6 + 0.7 * rng.random()
            ah = aw * (0.6 + 0.6 * rng.random())
            s = 0.3 + aw / 2 + rng.random() * max(0.0, length - aw - 0.6)
            span = (s - aw / 2 - 0.1, s + aw / 2 + 0.1)
            blocked = [(o[0], o[0] + o[1]) for o in r.openings[side]] + r.tall_spans[side] + \
                [a[1] for a in art if a[0] == side]
            if any(not (span[1] < a or span[0] > c) for a, c in blocked) or length < aw + 0.6:
                continue
            nrm = np.array(SIDES[side][1])
            along = np.array([1.0, 0.0]) if ax == 0 else np.array([0.0, 1.0])
            c2 = np.array([sx, sy]) + along * s
            poster = office and rng.random() < 0.5
            d = F.make_painting(b, rng, (c2[0], c2[1], 1.55), SIDES[side][2], (aw, ah), poster=poster)
            art.append((side, span))
            r.items.append(d)
        items = [it for it in r.items if not it.startswith("a cluster")][:3]
        if any(it.startswith("a cluster") for it in r.items):
            items = ["rows of desks with monitors"] + items
        art_ = "an" if r.kind[0] in "aeiou" else "a"
        room_descs.append(f"{art_} {r.kind} with {wall_desc}, {floor_desc}" + (", " + ", ".join(items) if items else ""))
    # environment: indoor key light, shadows from furniture only
    env = b.environment
    env.indoor = True
    az = rng.random() * 2 * math.pi
    env.sun_dir = tuple(float(x) for x in (0.45 * math.cos(az), 0.45 * math.sin(az), 0.89))
    env.sun_color = (1.0, 0.96, 0.88)
    env.sun_strength = 0.55
    env.ambient = 0.55
    env.ambient_tilt = -0.1  # ceilings catch the bounce light of the room
    env.fog_color = (0.75, 0.73, 0.7)
    env.fog_density = 0.012
    env.sky_top, env.sky_horizon = (0.8, 0.8, 0.8), (0.8, 0.8, 0.8)
    if b.shadow_casters is None:
        b.shadow_casters = []
    what = "office floor" if office else "apartment"
    room_descs = [room_descs[k] for k in order]  # the main (largest) room first
    description = f"A {len(rooms)}-room {what}: " + "; ".join(room_descs) + "."
    main = rooms[order[0]]
    cands = [((main.x0 + main.x1) / 2, (main.y0 + main.y1) / 2, 1.6)]
    for fx, fy in ((0.2, 0.2), (0.8, 0.8), (0.2, 0.8), (0.8, 0.2)):
        cands.append((main.x0 + fx * (main.x1 - main.x0), main.y0 + fy * (main.y1 - main.y0), 1.6))
    cands += [((r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2, 1.6) for r in rooms if r is not main][:3]
    spec = procedural_spec(family, seed, params)
    return b.build(description=description, bounds_min=(0.0, 0.0, 0.25), bounds_max=(xs[-1], ys[-1], H - 0.25),
                   camera_height=1.6, spawn_candidates=cands, spec=spec, rng=rng)
