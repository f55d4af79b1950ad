"""Furniture and props built from boxes, cylinders and spheres.

Each ``make_*`` function takes a :class:`Placer` (a local frame on the floor: origin at the
footprint centre, local +y = the item's front, +z up) and adds parts and colliders to the
builder. It returns the object's description (a noun phrase for captions).
Footprints (width along local x, depth along local y) are listed in ``FOOTPRINTS``.
"""
from __future__ import annotations

import math

import numpy as np

from datagen.scenes import geometry as G
from datagen.scenes.builder import SceneBuilder
from datagen.scenes.materials import NAMED_COLOURS
from datagen.render.textures import PAINTING_MOTIFS


class Placer:
    def __init__(self, b: SceneBuilder, pos, yaw: float, rng: np.random.Generator, z0: float = 0.0):
        self.b, self.pos, self.yaw, self.rng = b, np.asarray(pos, float), float(yaw), rng
        self.z0 = z0
        self.R = G.rot_z(self.yaw)

    def world(self, local) -> np.ndarray:
        return self.pos + self.R @ np.asarray(local, float) + np.array([0, 0, self.z0])

    def box(self, obj, mat, center, size, collide=False, uv_mode="metric", faces=None):
        self.b.box(obj, mat, self.world(center), size, self.yaw, collide=collide, uv_mode=uv_mode, faces=faces)

    def collider(self, center, size):
        self.b.box_collider(self.world(center), size, self.yaw)

    def cyl(self, obj, mat, base, r, h, top_r=None, seg=12):
        self.b.part(obj, mat, G.cylinder(self.world(base), r, h, seg, top_radius=top_r))

    def sphere(self, obj, mat, c, r, squash=1.0):
        self.b.part(obj, mat, G.sphere(self.world(c), r, squash=squash, jitter=self.rng))


def _c(rng, names):
    n = names[int(rng.integers(len(names)))]
    base = np.asarray(NAMED_COLOURS[n])
    return tuple(np.clip(base * (0.9 + 0.2 * rng.random(3)), 0, 1)), n


def wood_material(b: SceneBuilder, rng, light=None) -> tuple[str, str]:
    tones = [((0.62, 0.45, 0.28), (0.45, 0.30, 0.17), "oak"), ((0.40, 0.24, 0.14), (0.28, 0.16, 0.09), "walnut"),
             ((0.80, 0.68, 0.50), (0.66, 0.52, 0.36), "birch"), ((0.55, 0.30, 0.20), (0.40, 0.20, 0.12), "cherry")]
    c1, c2, name = tones[int(rng.integers(len(tones)))]
    return b.material(f"wood_{name}", "wood", c1, c2, tile_m=1.2), name


def fabric_material(b, rng, names=("green", "blue", "grey", "beige", "red", "mustard", "teal", "navy",
                                   "terracotta", "pink", "charcoal", "sage", "purple")) -> tuple[str, str]:
    col, cname = _c(rng, list(names))
    pattern = ["plain", "plain", "check", "stripes"][int(rng.integers(4))]
    texture = ["velvet", "linen", "wool", "leather"][int(rng.integers(4))]
    col2, _ = _c(rng, ["white", "cream", "charcoal", "mustard"])
    name = b.material(f"fabric_{len(b.materials)}", "fabric", col, col2, tile_m=0.6, pattern=pattern)
    desc = f"{cname} {texture}" + ("" if pattern == "plain" else f" {pattern}ed" if pattern == "check" else " striped")
    return name, desc


def paint_material(b, rng, names) -> tuple[str, str]:
    col, cname = _c(rng, list(names))
    return b.material(f"paint_{len(b.materials)}", "paint", col, col, tile_m=2.0), cname


# ---------------------------------------------------------------------------------- items
FOOTPRINTS = {
    "sofa": (2.0, 0.9), "armchair": (0.9, 0.85), "coffee_table": (1.1, 0.6), "tv": (1.6, 0.45),
    "bookshelf": (1.2, 0.35), "dining_table": (1.6, 0.9), "bed": (1.6, 2.1), "wardrobe": (1.4, 0.6),
    "nightstand": (0.45, 0.4), "counter": (2.4, 0.62), "fridge": (0.7, 0.7), "desk": (1.4, 0.7),
    "plant": (0.5, 0.5), "floor_lamp": (0.4, 0.4), "bathtub": (1.7, 0.75), "sink": (0.7, 0.5),
    "cabinet": (0.5, 0.6), "whiteboard": (1.8, 0.1), "meeting_table": (3.0, 1.2),
    "reception": (2.2, 0.8), "cooler": (0.4, 0.4), "partition": (1.6, 0.06), "toilet": (0.45, 0.7),
}


def make_sofa(p: Placer, armchair: bool = False) -> str:
    b, rng = p.b, p.rng
    fab, fdesc = fabric_material(b, rng)
    wood, _ = wood_material(b, rng)
    w, d = FOOTPRINTS["armchair" if armchair else "sofa"]
    cat = "armchair" if armchair else "sofa"
    desc = f"a {fdesc} {cat}"
    o = b.obj(cat, desc, fab, caster=True)
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.box(o, wood, (sx * (w / 2 - 0.08), sy * (d / 2 - 0.08), 0.05), (0.06, 0.06, 0.1))
    p.box(o, fab, (0, 0, 0.25), (w, d, 0.3))
    p.box(o, fab, (0, -d / 2 + 0.1, 0.6), (w, 0.2, 0.5))
    for sx in (-1, 1):
        p.box(o, fab, (sx * (w / 2 - 0.1), 0.05, 0.5), (0.2, d - 0.1, 0.22))
    n_cush = 1 if armchair else 2
    for i in range(n_cush):
        cx = (i - (n_cush - 1) / 2) * (w - 0.4) / n_cush
        p.box(o, fab, (cx, 0.05, 0.44), ((w - 0.44) / n_cush - 0.03, d - 0.3, 0.1))
    p.collider((0, 0, 0.45), (w, d, 0.9))
    return desc


def make_table(p: Placer, kind="coffee_table", chairs: int = 0) -> str:
    b, rng = p.b, p.rng
    if rng.random() < 0.3:
        top = b.material("marble_top", "marble", (0.93, 0.93, 0.92), (0.55, 0.55, 0.58), tile_m=1.0)
        tdesc = "marble"
    else:
        top, tdesc = wood_material(b, rng)
    w, d = FOOTPRINTS[kind]
    h = {"coffee_table": 0.42, "dining_table": 0.75, "meeting_table": 0.75}[kind]
    label = kind.replace("_", " ")
    desc = f"a {tdesc} {label}"
    o = b.obj(kind, desc, top, caster=True)
    p.box(o, top, (0, 0, h - 0.03), (w, d, 0.05))
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.box(o, top, (sx * (w / 2 - 0.06), sy * (d / 2 - 0.06), (h - 0.05) / 2), (0.05, 0.05, h - 0.05))
    p.collider((0, 0, h / 2), (w, d, h))
    if chairs:
        cm, _ = fabric_material(b, rng) if rng.random() < 0.5 else wood_material(b, rng)
        slots = []
        n_side = max(1, chairs // 2)
        for i in range(n_side):
            x = (i - (n_side - 1) / 2) * (w / max(n_side, 1))
            slots += [(x, d / 2 + 0.3, 0.0), (x, -d / 2 - 0.3, math.pi)]
        for (x, y, yy) in slots[:chairs]:
            make_chair(Placer(b, p.world((x, y, 0)), p.yaw + yy, rng), cm)
    return desc


def make_chair(p: Placer, mat: str, office: bool = False) -> str:
    b = p.b
    desc = "an office chair" if office else "a chair"
    o = b.obj("chair", desc, mat, caster=True)
    if office:
        p.cyl(o, mat, (0, 0, 0), 0.28, 0.05, seg=8)
        p.cyl(o, mat, (0, 0, 0.05), 0.03, 0.4, seg=6)
    else:
        for sx in (-1, 1):
            for sy in (-1, 1):
                p.box(o, mat, (sx * 0.19, sy * 0.19, 0.22), (0.04, 0.04, 0.44))
    p.box(o, mat, (0, 0, 0.47), (0.45, 0.45, 0.06))
    p.box(o, mat, (0, 0.2, 0.75), (0.45, 0.05, 0.5))  # backrest (+y local = behind, facing -y)
    p.collider((0, 0, 0.5), (0.5, 0.5, 1.0))
    return desc


def make_tv(p: Placer) -> str:
    b, rng = p.b, p.rng
    wood, wdesc = wood_material(b, rng)
    screen = b.material(f"screen_{len(b.materials)}", "screen", (0.1, 0.1, 0.1), tuple(rng.random(3) * 0.6 + 0.3),
                        seed=int(rng.integers(1 << 30)))
    o = b.obj("tv", f"a television on a {wdesc} stand", screen, caster=True)
    w, d = FOOTPRINTS["tv"]
    p.box(o, wood, (0, 0, 0.25), (w, d, 0.5))
    black = b.material("black_plastic", "paint", (0.05, 0.05, 0.06), tile_m=1.0)
    p.box(o, black, (0, -0.05, 0.9), (1.2, 0.06, 0.7))
    p.box(o, screen, (0, -0.05 + 0.031, 0.9), (1.16, 0.002, 0.66), uv_mode="unit", faces=(2,))
    p.collider((0, 0, 0.6), (w, d, 1.2))
    return "a television"


def make_bookshelf(p: Placer) -> str:
    b, rng = p.b, p.rng
    wood, wdesc = wood_material(b, rng)
    books = b.material(f"books_{len(b.materials)}", "books", (0.5, 0.4, 0.3), tile_m=1.0, seed=int(rng.integers(1 << 30)))
    desc = f"a {wdesc} bookshelf full of books"
    o = b.obj("bookshelf", desc, wood, caster=True)
    w, d = FOOTPRINTS["bookshelf"]
    h = 1.8 + 0.4 * rng.random()
    p.box(o, wood, (0, -d / 2 + 0.02, h / 2), (w, 0.04, h))
    for sx in (-1, 1):
        p.box(o, wood, (sx * (w / 2 - 0.02), 0, h / 2), (0.04, d, h))
    p.box(o, wood, (0, 0, h - 0.02), (w, d, 0.04))
    p.box(o, books, (0, 0.0, h / 2), (w - 0.08, d - 0.08, h - 0.1), faces=(2,))
    p.collider((0, 0, h / 2), (w, d, h))
    return desc


def make_bed(p: Placer) -> str:
    b, rng = p.b, p.rng
    wood, wdesc = wood_material(b, rng)
    sheet = b.material("sheet_white", "fabric", (0.93, 0.92, 0.9), tile_m=0.5)
    blanket, bdesc = fabric_material(b, rng)
    w, d = FOOTPRINTS["bed"]
    desc = f"a double bed with a {bdesc} blanket"
    o = b.obj("bed", desc, blanket, caster=True)
    p.box(o, wood, (0, 0, 0.2), (w, d, 0.3))
    p.box(o, sheet, (0, 0, 0.45), (w - 0.06, d - 0.06, 0.2))
    p.box(o, blanket, (0, 0.25, 0.52), (w - 0.02, d - 0.6, 0.08))
    p.box(o, wood, (0, -d / 2 + 0.04, 0.6), (w, 0.08, 1.2))
    for sx in (-1, 1):
        p.box(o, sheet, (sx * w / 4, -d / 2 + 0.35, 0.6), (w / 2 - 0.15, 0.35, 0.14))
    p.collider((0, 0, 0.6), (w, d, 1.2))
    return desc


def make_wardrobe(p: Placer) -> str:
    b, rng = p.b, p.rng
    if rng.random() < 0.5:
        mat, cdesc = wood_material(b, rng)
    else:
        mat, cdesc = paint_material(b, rng, ["white", "grey", "sage", "navy", "cream"])
    desc = f"a tall {cdesc} wardrobe"
    o = b.obj("wardrobe", desc, mat, caster=True)
    w, d = FOOTPRINTS["wardrobe"]
    h = 2.1
    p.box(o, mat, (0, 0, h / 2), (w, d, h), collide=True)
    metal = b.material("brushed_metal", "metal", (0.7, 0.7, 0.72), tile_m=1.0)
    for sx in (-1, 1):
        p.box(o, metal, (sx * 0.06, d / 2 + 0.015, 1.1), (0.02, 0.03, 0.3))
    p.box(o, mat, (0, d / 2 + 0.003, h / 2), (0.01, 0.006, h - 0.1))
    return desc


def make_small_cabinet(p: Placer, cat="nightstand") -> str:
    b, rng = p.b, p.rng
    mat, cdesc = wood_material(b, rng)
    desc = f"a {cdesc} {cat}"
    o = b.obj(cat, desc, mat, caster=True)
    w, d = FOOTPRINTS["nightstand" if cat == "nightstand" else "cabinet"]
    h = 0.55 if cat == "nightstand" else 1.1
    p.box(o, mat, (0, 0, h / 2), (w, d, h), collide=True)
    if cat == "nightstand":
        shade = b.material("lamp_shade", "light", (1.0, 0.92, 0.75), tile_m=1.0)
        p.cyl(o, mat, (0, 0, h), 0.05, 0.25, seg=8)
        p.cyl(o, shade, (0, 0, h + 0.25), 0.16, 0.2, top_r=0.1, seg=12)
    return desc


def make_plant(p: Placer) -> str:
    b, rng = p.b, p.rng
    pot = b.material("terracotta_pot", "plaster", (0.72, 0.38, 0.24), tile_m=1.0)
    leaves = b.material(f"leaves_{int(rng.integers(3))}", "leaves", (0.15, 0.42, 0.16), (0.3, 0.6, 0.22), tile_m=0.5)
    kind = ["fern", "ficus", "monstera", "palm"][int(rng.integers(4))]
    desc = f"a potted {kind}"
    o = b.obj("plant", desc, leaves, caster=True)
    p.cyl(o, pot, (0, 0, 0), 0.18, 0.35, top_r=0.22, seg=10)
    h = 0.8 + 0.6 * rng.random()
    p.sphere(o, leaves, (0, 0, 0.35 + h / 2), 0.35, squash=h / 0.7)
    p.collider((0, 0, (0.35 + h) / 2 + 0.1), (0.5, 0.5, 0.35 + h + 0.2))
    return desc


def make_floor_lamp(p: Placer) -> str:
    b = p.b
    metal = b.material("black_metal", "metal", (0.1, 0.1, 0.1), tile_m=1.0)
    shade = b.material("lamp_shade", "light", (1.0, 0.92, 0.75), tile_m=1.0)
    o = b.obj("lamp", "a floor lamp", shade, caster=True)
    p.cyl(o, metal, (0, 0, 0), 0.15, 0.03, seg=10)
    p.cyl(o, metal, (0, 0, 0.03), 0.02, 1.45, seg=6)
    p.cyl(o, shade, (0, 0, 1.4), 0.22, 0.3, top_r=0.14, seg=12)
    p.collider((0, 0, 0.85), (0.4, 0.4, 1.7))
    return "a floor lamp"


def make_counter(p: Placer) -> str:
    b, rng = p.b, p.rng
    cab, cdesc = paint_material(b, rng, ["white", "sage", "navy", "grey", "cream", "olive", "charcoal"])
    top = b.material("counter_top", "marble", (0.9, 0.9, 0.88), (0.45, 0.45, 0.47), tile_m=1.0)
    desc = f"a kitchen counter with {cdesc} cabinets"
    o = b.obj("counter", desc, cab, caster=True)
    w, d = FOOTPRINTS["counter"]
    p.box(o, cab, (0, 0, 0.44), (w, d, 0.88))
    p.box(o, top, (0, 0.01, 0.9), (w, d + 0.02, 0.04))
    p.box(o, cab, (0, -d / 2 + 0.18, 1.85), (w, 0.35, 0.7))
    metal = b.material("brushed_metal", "metal", (0.7, 0.7, 0.72), tile_m=1.0)
    for i in range(int(w / 0.6)):
        x = -w / 2 + 0.3 + i * 0.6
        p.box(o, metal, (x, d / 2 + 0.01, 0.75), (0.15, 0.02, 0.02))
    p.box(o, metal, (0.4, 0.05, 0.925), (0.5, 0.35, 0.01))  # sink
    p.collider((0, 0, 1.1), (w, d, 2.2))
    return desc


def make_fridge(p: Placer) -> str:
    b = p.b
    metal = b.material("steel", "metal", (0.78, 0.79, 0.8), tile_m=1.0)
    o = b.obj("fridge", "a steel fridge", metal, caster=True)
    w, d = FOOTPRINTS["fridge"]
    p.box(o, metal, (0, 0, 0.95), (w, d, 1.9), collide=True)
    dark = b.material("black_plastic", "paint", (0.05, 0.05, 0.06), tile_m=1.0)
    p.box(o, dark, (0, d / 2 + 0.005, 1.2), (w - 0.02, 0.01, 0.01))
    p.box(o, dark, (w / 2 - 0.08, d / 2 + 0.02, 1.0), (0.03, 0.03, 0.6))
    return "a steel fridge"


def make_bathtub(p: Placer) -> str:
    b = p.b
    white = b.material("ceramic_white", "paint", (0.95, 0.95, 0.95), tile_m=1.0)
    o = b.obj("bathtub", "a white bathtub", white, caster=True)
    w, d = FOOTPRINTS["bathtub"]
    p.box(o, white, (0, 0, 0.28), (w, d, 0.56), faces=(0, 1, 2, 3, 5))
    water = b.material("bath_water", "water", (0.6, 0.78, 0.85), (0.8, 0.9, 0.95), tile_m=1.0)
    p.box(o, water, (0, 0, 0.45), (w - 0.1, d - 0.1, 0.2))
    p.box(o, white, (0, 0, 0.55), (w, d, 0.02), faces=(4,))
    p.collider((0, 0, 0.3), (w, d, 0.6))
    return "a white bathtub"


def make_sink(p: Placer) -> str:
    b = p.b
    white = b.material("ceramic_white", "paint", (0.95, 0.95, 0.95), tile_m=1.0)
    mirror = b.material("mirror_glass", "metal", (0.75, 0.82, 0.85), tile_m=2.0)
    o = b.obj("sink", "a sink under a mirror", white, caster=True)
    w, d = FOOTPRINTS["sink"]
    p.box(o, white, (0, 0, 0.42), (w, d, 0.84))
    p.box(o, mirror, (0, -d / 2 + 0.02, 1.5), (0.6, 0.02, 0.8))
    p.collider((0, 0, 0.45), (w, d, 0.9))
    return "a sink under a mirror"


def make_toilet(p: Placer) -> str:
    b = p.b
    white = b.material("ceramic_white", "paint", (0.95, 0.95, 0.95), tile_m=1.0)
    o = b.obj("toilet", "a toilet", white, caster=True)
    p.box(o, white, (0, -0.25, 0.55), (0.4, 0.18, 0.4))
    p.cyl(o, white, (0, 0.05, 0), 0.2, 0.42, seg=12)
    p.collider((0, 0, 0.4), (0.45, 0.7, 0.8))
    return "a toilet"


def make_desk(p: Placer, with_chair=True) -> str:
    b, rng = p.b, p.rng
    top, tdesc = wood_material(b, rng) if rng.random() < 0.6 else \
        (b.material("desk_white", "paint", (0.9, 0.9, 0.88), tile_m=1.0), "white")
    desc = f"a {tdesc} desk with a monitor"
    o = b.obj("desk", desc, top, caster=True)
    w, d = FOOTPRINTS["desk"]
    metal = b.material("black_metal", "metal", (0.1, 0.1, 0.1), tile_m=1.0)
    p.box(o, top, (0, 0, 0.73), (w, d, 0.04))
    for sx in (-1, 1):
        p.box(o, metal, (sx * (w / 2 - 0.05), 0, 0.36), (0.04, d - 0.1, 0.72))
    screen = b.material(f"screen_{len(b.materials)}", "screen", (0.1, 0.1, 0.1), tuple(rng.random(3) * 0.6 + 0.3),
                        seed=int(rng.integers(1 << 30)))
    p.box(o, metal, (0, -d / 2 + 0.12, 0.77 + 0.22), (0.62, 0.03, 0.38))
    p.box(o, screen, (0, -d / 2 + 0.12 + 0.016, 0.99), (0.58, 0.002, 0.34), uv_mode="unit", faces=(2,))
    p.box(o, metal, (0, -d / 2 + 0.15, 0.77), (0.05, 0.05, 0.1))
    p.collider((0, 0, 0.6), (w, d, 1.2))
    if with_chair:
        cm, _ = fabric_material(b, rng, ("charcoal", "black", "navy", "grey", "red"))
        make_chair(Placer(b, p.world((0, d / 2 + 0.35, 0)), p.yaw, rng), cm, office=True)
    return desc


def make_whiteboard(p: Placer) -> str:
    b = p.b
    wb = b.material("whiteboard", "paint", (0.97, 0.97, 0.97), tile_m=4.0)
    frame = b.material("brushed_metal", "metal", (0.7, 0.7, 0.72), tile_m=1.0)
    o = b.obj("whiteboard", "a whiteboard", wb)
    p.box(o, frame, (0, 0, 1.45), (1.84, 0.04, 1.04))
    p.box(o, wb, (0, 0.021, 1.45), (1.78, 0.002, 0.98), collide=False)
    return "a whiteboard"


def make_partition(p: Placer, mat) -> str:
    b = p.b
    o = b.obj("partition", "a fabric cubicle partition", mat, caster=True)
    w, d = FOOTPRINTS["partition"]
    p.box(o, mat, (0, 0, 0.65), (w, d, 1.3), collide=True)
    return "a fabric cubicle partition"


def make_cooler(p: Placer) -> str:
    b = p.b
    white = b.material("ceramic_white", "paint", (0.95, 0.95, 0.95), tile_m=1.0)
    water = b.material("cooler_water", "water", (0.45, 0.65, 0.9), (0.6, 0.8, 0.95), tile_m=0.5)
    o = b.obj("water_cooler", "a water cooler", white, caster=True)
    p.box(o, white, (0, 0, 0.5), (0.35, 0.35, 1.0))
    p.cyl(o, water, (0, 0, 1.0), 0.14, 0.4, seg=10)
    p.collider((0, 0, 0.7), (0.4, 0.4, 1.4))
    return "a water cooler"


def make_painting(b: SceneBuilder, rng, center, yaw: float, size=(1.0, 0.7), poster: bool = False) -> str:
    """A framed painting (or poster) on a wall: `center` on the wall surface, `yaw` = facing dir."""
    names = list(NAMED_COLOURS)
    pal_names = [names[int(i)] for i in rng.choice(len(names), 5, replace=False)]
    pal = [tuple(np.clip(np.asarray(NAMED_COLOURS[n]) * (0.85 + 0.3 * rng.random(3)), 0, 1)) for n in pal_names]
    motif = PAINTING_MOTIFS[int(rng.integers(len(PAINTING_MOTIFS)))]
    bg_name = names[int(rng.integers(len(names)))]
    bg = NAMED_COLOURS[bg_name]
    if poster:
        mat = b.material(f"poster_{len(b.materials)}", "poster", bg, tile_m=1.0, seed=int(rng.integers(1 << 30)),
                         palette=[list(c) for c in pal])
        desc = f"a {pal_names[1]} and {bg_name} poster"
        cat = "poster"
    else:
        mat = b.material(f"painting_{len(b.materials)}", "painting", bg, tile_m=1.0, seed=int(rng.integers(1 << 30)),
                         motif=motif, palette=[list(c) for c in pal])
        what = {"circles": f"{pal_names[0]} circles", "stripes": f"{pal_names[0]} and {pal_names[1]} stripes",
                "blocks": "coloured blocks", "landscape": "hills under a sky", "waves": f"{pal_names[0]} waves",
                "triangles": f"{pal_names[0]} triangles", "dots": f"{pal_names[0]} dots",
                "sunset": "a sunset over hills", "rings": f"{pal_names[0]} rings"}[motif]
        desc = f"a painting of {what}"
        cat = "painting"
    o = b.obj(cat, desc, mat)
    R = G.rot_z(yaw)
    fwd = R @ np.array([0.0, 1.0, 0.0])  # local +y = facing direction
    c = np.asarray(center, float)
    w, h = size
    if not poster:
        frame, _ = wood_material(b, rng)
        b.box(o, frame, c + fwd * 0.02, (w + 0.08, 0.04, h + 0.08), yaw, collide=False)
        b.box(o, mat, c + fwd * 0.041, (w, 0.002, h), yaw, collide=False, uv_mode="unit", faces=(2,))
    else:
        b.box(o, mat, c + fwd * 0.003, (w, 0.004, h), yaw, collide=False, uv_mode="unit", faces=(2,))
    return desc
