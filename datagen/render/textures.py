"""Procedural texture images, one per material, made once per scene load (no per-frame noise).

:func:`make_texture` returns a tileable (T, T, 3) float32 sRGB image in [0, 1] for a
:class:`datagen.scenes.materials.Material`. Texel (row i, column j) covers texture coordinates
u in [j/T, (j+1)/T), v in [i/T, (i+1)/T) of one repeat. Everything is a deterministic function of
the material (its ``seed`` drives a ``numpy.random.Generator``), so a scene renders identically
after reload.

Kinds: paint / plaster / metal (flat colour with faint mottling), wood (long boards with grain),
parquet (herringbone-ish blocks), tiles (square tiles with grout), brick (running bond), fabric
(woven threads), carpet, grass, asphalt, concrete, paving (large slabs), gravel, dirt, bark,
leaves, water, marble, books (rows of spines), road_marking (dashed line), glass_facade (office
windows grid), painting (one of several abstract/landscape motifs, chosen by the material's
``params['motif']``), poster (bold blocks and stripes), window (sky and a frame cross), screen
(glowing UI panes), light (bright panel).
"""
from __future__ import annotations

import math

import numpy as np

from datagen.scenes.materials import Material

TEX_SIZE = 128
PAINTING_MOTIFS = ("circles", "stripes", "blocks", "landscape", "waves", "triangles", "dots", "sunset", "rings")


def _noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Tileable value noise in [0, 1]: a random cells x cells grid, periodic bilinear upsampling."""
    g = rng.random((cells, cells)).astype(np.float32)
    x = np.arange(size, dtype=np.float32) * cells / size
    i0 = np.floor(x).astype(int)
    f = x - i0
    f = f * f * (3 - 2 * f)
    i1 = (i0 + 1) % cells
    i0 = i0 % cells
    rows = g[i0][:, i0] * (1 - f)[None, :] + g[i0][:, i1] * f[None, :]
    rows1 = g[i1][:, i0] * (1 - f)[None, :] + g[i1][:, i1] * f[None, :]
    return rows * (1 - f)[:, None] + rows1 * f[:, None]


def _fbm(rng, size, base=4, octaves=4) -> np.ndarray:
    out = np.zeros((size, size), np.float32)
    amp, tot = 1.0, 0.0
    for o in range(octaves):
        cells = min(base * 2 ** o, size)
        out += amp * _noise(rng, size, cells)
        tot += amp
        amp *= 0.5
    return out / tot


def _mix(a, b, t):
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    t = np.asarray(t, np.float32)[..., None]
    return a * (1 - t) + b * t


def _grid(size):
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return x, y  # u (columns), v (rows) in [0, 1)


def _hsv_jitter(rng, c, amount=0.08):
    return np.clip(np.asarray(c, np.float32) * (1 + amount * (rng.random(3) - 0.5) * 2), 0, 1)


def make_texture(m: Material, size: int = TEX_SIZE) -> np.ndarray:
    rng = np.random.default_rng([int(m.seed) & 0xFFFFFFFF, sum(map(ord, m.kind))])
    c1 = np.asarray(m.color, np.float32)
    c2 = np.asarray(m.color2, np.float32)
    u, v = _grid(size)
    k = m.kind
    if k in ("paint", "plaster", "metal"):
        amt = {"paint": 0.05, "plaster": 0.12, "metal": 0.08}[k]
        n = _fbm(rng, size, 4, 4)
        img = c1[None, None] * (1 - amt + 2 * amt * n[..., None])
        if k == "metal":
            img = img * (0.9 + 0.2 * v[..., None])
    elif k == "wood":  # boards along u, 4 per repeat
        boards = 4
        b = np.floor(v * boards).astype(int)
        tint = rng.random(boards).astype(np.float32)
        off = rng.random(boards).astype(np.float32)
        grain = np.sin((v * boards * 6 + 2.5 * _fbm(rng, size, 2, 3)) * 2 * math.pi * 3) * 0.5 + 0.5
        t = 0.25 * tint[b] + 0.35 * grain * (0.6 + 0.4 * _noise(rng, size, 8))
        img = _mix(c1, c2, t)
        seam = (np.abs((v * boards) % 1.0) < 0.04) | (np.abs(((u + off[b]) * 2) % 1.0) < 0.01)
        img[seam] *= 0.55
    elif k == "parquet":
        n = 8
        cu, cv = np.floor(u * n).astype(int), np.floor(v * n).astype(int)
        checker = (cu + cv) % 2
        lu, lv = (u * n) % 1.0, (v * n) % 1.0
        stripe = np.where(checker == 0, lu, lv)
        plank = np.floor(stripe * 3)
        tint = (np.sin(plank * 12.9 + cu * 78.2 + cv * 37.7) * 0.5 + 0.5)
        img = _mix(c1, c2, 0.3 * tint + 0.3 * _fbm(rng, size, 16, 2))
        edge = (np.minimum(lu, lv) < 0.03) | (np.abs((stripe * 3) % 1.0) < 0.05)
        img[edge] *= 0.7
    elif k in ("tiles", "paving"):
        n = int(m.params.get("n", 4 if k == "tiles" else 2))
        cu, cv = np.floor(u * n).astype(int), np.floor(v * n).astype(int)
        tint = rng.random((n, n)).astype(np.float32)
        base = _mix(c1, c1 * 0.85, tint[cu, cv] * (0.5 if k == "tiles" else 1.0))
        if m.params.get("checker"):
            base = np.where(((cu + cv) % 2 == 1)[..., None], c2[None, None], base)
        img = base * (0.93 + 0.14 * _fbm(rng, size, 8, 3)[..., None])
        g = 0.025 * n
        grout = ((u * n) % 1.0 < g) | ((v * n) % 1.0 < g)
        img[grout] = c2 * 0.9 if not m.params.get("checker") else 0.6 * c1
    elif k == "brick":
        rows = 8
        r = np.floor(v * rows).astype(int)
        uu = u * 4 + 0.5 * (r % 2)
        col = np.floor(uu).astype(int) % 4
        tint = rng.random((rows, 4)).astype(np.float32)
        img = _mix(c1, c1 * 0.7, tint[r, col]) * (0.85 + 0.3 * _fbm(rng, size, 16, 2)[..., None])
        mortar = ((v * rows) % 1.0 < 0.12) | ((uu % 1.0) < 0.05)
        img[mortar] = c2
    elif k == "fabric":
        w = 32
        warp = (np.sin(u * w * 2 * math.pi) * 0.5 + 0.5)
        weft = (np.sin(v * w * 2 * math.pi) * 0.5 + 0.5)
        img = c1[None, None] * (0.8 + 0.12 * warp[..., None] + 0.12 * weft[..., None]
                                + 0.1 * _fbm(rng, size, 4, 3)[..., None] - 0.1)
        if m.params.get("pattern") == "check":
            chk = ((np.floor(u * 4) + np.floor(v * 4)) % 2)[..., None]
            img = img * (1 - 0.5 * chk) + c2 * 0.5 * chk
        elif m.params.get("pattern") == "stripes":
            st = (np.floor(u * 6) % 2)[..., None]
            img = img * (1 - 0.5 * st) + c2 * 0.5 * st
    elif k == "carpet":
        img = _mix(c1, c2, 0.35 * _fbm(rng, size, 16, 3) + 0.2 * rng.random((size, size)).astype(np.float32))
    elif k == "grass":
        n = _fbm(rng, size, 4, 5)
        blades = rng.random((size, size)).astype(np.float32)
        img = _mix(c1, c2, 0.6 * n + 0.4 * blades ** 2)
        img *= (0.85 + 0.15 * _noise(rng, size, 32))[..., None]
    elif k in ("asphalt", "concrete", "gravel", "dirt"):
        grain = rng.random((size, size)).astype(np.float32)
        n = _fbm(rng, size, 4, 4)
        amt = {"asphalt": (0.25, 0.3), "concrete": (0.25, 0.1), "gravel": (0.2, 0.6), "dirt": (0.5, 0.25)}[k]
        img = _mix(c1, c2, amt[0] * n + amt[1] * grain)
        if k == "concrete":
            img[(u % 0.5 < 0.008) | (v % 0.5 < 0.008)] *= 0.75
    elif k == "road_marking":
        img = np.broadcast_to(c1, (size, size, 3)).copy()
        img *= (0.85 + 0.3 * rng.random((size, size)).astype(np.float32))[..., None]
        line = (np.abs(v - 0.5) < 0.04) & ((u % 1.0) < 0.5)
        img[line] = c2
    elif k == "bark":
        n = _noise(rng, size, 16)
        stripes = np.sin((u * 12 + 1.5 * _fbm(rng, size, 4, 2)) * 2 * math.pi) * 0.5 + 0.5
        img = _mix(c1, c2, 0.5 * stripes * n + 0.3 * rng.random((size, size)).astype(np.float32))
    elif k == "leaves":
        n = _fbm(rng, size, 8, 4)
        spots = (_noise(rng, size, 32) > 0.6).astype(np.float32)
        img = _mix(c1, c2, 0.7 * n + 0.3 * spots)
    elif k == "water":
        n = _fbm(rng, size, 4, 3)
        ripples = np.sin((v * 16 + 2 * n) * 2 * math.pi) * 0.5 + 0.5
        img = _mix(c1, c2, 0.3 * ripples + 0.3 * n)
    elif k == "marble":
        n = _fbm(rng, size, 4, 5)
        vein = np.abs(np.sin((u * 3 + v * 2 + 4 * n) * math.pi)) ** 0.2
        img = _mix(c2, c1, vein)
    elif k == "books":
        rows = 4
        img = np.zeros((size, size, 3), np.float32)
        for r in range(rows):
            x = 0
            r0, r1 = r * size // rows, (r + 1) * size // rows
            while x < size:
                w = int(rng.integers(3, 9))
                hgt = int(rng.integers(int(0.55 * (r1 - r0)), r1 - r0))
                col = np.asarray(rng.random(3) * 0.7 + 0.15, np.float32)
                img[r1 - hgt:r1, x:x + w] = col
                img[r1 - hgt:r1, x + w - 1:x + w] = col * 0.5
                x += w
            img[r0:r0 + 2] = c1 * 0.6
        img[img.sum(-1) == 0] = c1 * 0.35
    elif k == "glass_facade":
        img = _mix(c2, c2 * 1.3, v * 0.6 + 0.2 * _noise(rng, size, 4))
        frame = ((u * 2) % 1.0 < 0.08) | ((v * 2) % 1.0 < 0.1)
        img[frame] = c1
    elif k == "window":
        sky_top = np.asarray(m.params.get("sky", (0.55, 0.72, 0.95)), np.float32)
        img = _mix(sky_top * 1.05, np.array([0.9, 0.93, 0.97], np.float32), v ** 1.5)
        hills = 0.75 + 0.08 * np.sin(u * 2 * math.pi * 2 + rng.random() * 6) + 0.05 * _noise(rng, size, 8)
        img[v > hills] = np.asarray((0.35, 0.5, 0.3), np.float32) * (0.9 + 0.2 * _noise(rng, size, 16)[v > hills][:, None])
        frame = (np.abs(u - 0.5) < 0.025) | (np.abs(v - 0.5) < 0.025) | (u < 0.04) | (u > 0.96) | (v < 0.04) | (v > 0.96)
        img[frame] = c1
    elif k == "screen":
        img = np.broadcast_to(c2 * 0.3, (size, size, 3)).copy()
        for _ in range(int(rng.integers(3, 7))):
            x0, y0 = rng.integers(4, size // 2, 2)
            w, h = rng.integers(size // 6, size // 2, 2)
            img[y0:y0 + h, x0:x0 + w] = rng.random(3) * 0.6 + 0.3
        bezel = (u < 0.04) | (u > 0.96) | (v < 0.06) | (v > 0.94)
        img[bezel] = 0.05
    elif k == "light":
        img = np.broadcast_to(c1, (size, size, 3)).copy()
        img[(u < 0.05) | (u > 0.95) | (v < 0.05) | (v > 0.95)] *= 0.7
    elif k == "painting":
        img = _painting(rng, m, size, u, v)
    elif k == "poster":
        img = _poster(rng, m, size, u, v)
    else:  # pragma: no cover - Material validates kinds
        raise ValueError(f"no texture for kind {k!r}")
    return np.clip(np.ascontiguousarray(img, dtype=np.float32), 0.0, 1.0)


def _palette(m: Material, rng) -> list[np.ndarray]:
    pal = [np.asarray(c, np.float32) for c in m.params.get("palette", [])]
    while len(pal) < 5:
        pal.append(rng.random(3).astype(np.float32))
    return pal


def _painting(rng, m, size, u, v) -> np.ndarray:
    motif = m.params.get("motif", "blocks")
    pal = _palette(m, rng)
    bg = np.asarray(m.color, np.float32)
    img = np.broadcast_to(bg, (size, size, 3)).copy()
    if motif == "circles":
        for i in range(int(rng.integers(3, 7))):
            cx, cy, r = rng.random(), rng.random(), 0.08 + 0.2 * rng.random()
            img[(u - cx) ** 2 + (v - cy) ** 2 < r * r] = pal[i % len(pal)]
    elif motif == "rings":
        cx, cy = 0.3 + 0.4 * rng.random(2)
        d = np.sqrt((u - cx) ** 2 + (v - cy) ** 2)
        img = np.stack([pal[int(x) % 3] for x in range(3)])[(np.floor(d * 10).astype(int)) % 3]
    elif motif == "stripes":
        ang = rng.random() * math.pi
        s = np.floor((u * math.cos(ang) + v * math.sin(ang)) * int(rng.integers(4, 10))).astype(int)
        img = np.stack(pal[:3])[s % 3]
    elif motif == "blocks":  # Mondrian-like
        xs = np.sort(rng.random(2)); ys = np.sort(rng.random(2))
        cx = np.searchsorted(xs, u); cy = np.searchsorted(ys, v)
        idx = (cx * 3 + cy) % len(pal)
        img = np.stack(pal)[idx]
        for x in xs:
            img[np.abs(u - x) < 0.015] = 0.05
        for y in ys:
            img[np.abs(v - y) < 0.015] = 0.05
    elif motif in ("landscape", "sunset"):
        sky = _mix(pal[0], pal[1], v / 0.6)
        img = sky.copy()
        if motif == "sunset":
            sx = 0.3 + 0.4 * rng.random()
            img[(u - sx) ** 2 + (v - 0.45) ** 2 < 0.012] = np.array([1.0, 0.85, 0.4])
        for layer, col in enumerate(pal[2:5]):
            ph = rng.random() * 6
            h = 0.45 + 0.12 * layer + 0.08 * np.sin(u * (3 + layer * 2) * math.pi + ph)
            img[v > h] = col * (0.9 + 0.1 * layer)
    elif motif == "waves":
        for i in range(6):
            h = 0.15 * i + 0.06 * np.sin(u * 4 * math.pi + i)
            img[v > h] = pal[i % len(pal)]
    elif motif == "triangles":
        n = int(rng.integers(3, 6))
        cu, cv = np.floor(u * n).astype(int), np.floor(v * n).astype(int)
        lu, lv = (u * n) % 1, (v * n) % 1
        tri = (lu > lv).astype(int)
        img = np.stack(pal)[(cu * 7 + cv * 3 + tri * 2) % len(pal)]
    elif motif == "dots":
        n = int(rng.integers(4, 8))
        lu, lv = (u * n) % 1 - 0.5, (v * n) % 1 - 0.5
        cu, cv = np.floor(u * n).astype(int), np.floor(v * n).astype(int)
        dot = lu ** 2 + lv ** 2 < 0.1
        img[dot] = np.stack(pal)[((cu + 2 * cv) % len(pal))[dot]]
    # canvas grain
    img = img * (0.94 + 0.1 * _noise(rng, size, 32)[..., None])
    return img


def _poster(rng, m, size, u, v) -> np.ndarray:
    pal = _palette(m, rng)
    img = np.broadcast_to(np.asarray(m.color, np.float32), (size, size, 3)).copy()
    # headline bar, big shape, text lines
    img[(v > 0.08) & (v < 0.22) & (u > 0.08) & (u < 0.92)] = pal[0]
    shape = int(rng.integers(0, 3))
    if shape == 0:
        img[(u - 0.5) ** 2 + (v - 0.5) ** 2 < 0.05] = pal[1]
    elif shape == 1:
        img[(v > 0.3) & (v < 0.7) & (np.abs(u - 0.5) < (v - 0.3))] = pal[1]
    else:
        img[(v > 0.3) & (v < 0.7) & (u > 0.2) & (u < 0.8)] = pal[1]
    for i in range(4):
        y = 0.75 + 0.05 * i
        img[(v > y) & (v < y + 0.02) & (u > 0.1) & (u < 0.9 - 0.15 * rng.random())] = pal[2] * 0.4
    return img
