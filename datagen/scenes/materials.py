"""Surface materials of a scene: a kind of procedural texture plus its colours and scale.

A :class:`Material` is pure data (JSON-able). The renderer turns each one into a texture image
once per scene load (:func:`datagen.render.textures.make_texture`), so rendering is a lookup.

Colours are sRGB floats in [0, 1]. ``tile_m`` is the world size in metres of one texture repeat
on faces with metric UVs (ignored for ``unit``-UV parts such as paintings). ``emissive``
materials (windows, screens, light panels) are shown unlit at their texture colour.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

# Texture kinds understood by datagen.render.textures (documented there).
KINDS = ("paint", "plaster", "wood", "parquet", "tiles", "brick", "fabric", "carpet", "grass",
         "asphalt", "concrete", "paving", "gravel", "bark", "leaves", "metal", "water", "marble",
         "painting", "poster", "window", "screen", "light", "books", "road_marking", "dirt", "glass_facade")
EMISSIVE_KINDS = ("window", "screen", "light")

# A small table of named colours used for descriptions ("a green velvet sofa").
NAMED_COLOURS = {
    "white": (0.92, 0.92, 0.90), "cream": (0.93, 0.88, 0.74), "beige": (0.82, 0.74, 0.60),
    "grey": (0.55, 0.55, 0.56), "charcoal": (0.22, 0.23, 0.25), "black": (0.08, 0.08, 0.09),
    "red": (0.72, 0.14, 0.12), "crimson": (0.55, 0.06, 0.15), "orange": (0.90, 0.48, 0.12),
    "mustard": (0.80, 0.62, 0.16), "yellow": (0.95, 0.85, 0.25), "olive": (0.45, 0.48, 0.18),
    "green": (0.20, 0.55, 0.25), "emerald": (0.05, 0.45, 0.32), "teal": (0.10, 0.50, 0.52),
    "turquoise": (0.25, 0.75, 0.72), "sky blue": (0.45, 0.68, 0.90), "blue": (0.16, 0.32, 0.72),
    "navy": (0.10, 0.14, 0.35), "purple": (0.45, 0.22, 0.60), "lilac": (0.72, 0.60, 0.82),
    "pink": (0.92, 0.55, 0.65), "terracotta": (0.75, 0.38, 0.25), "brown": (0.45, 0.29, 0.16),
    "tan": (0.72, 0.56, 0.38), "sage": (0.62, 0.70, 0.55), "mint": (0.66, 0.88, 0.74),
}


def colour_name(rgb) -> str:
    """Nearest entry of NAMED_COLOURS to an sRGB float triple."""
    c = np.asarray(rgb, float)
    return min(NAMED_COLOURS, key=lambda k: float(np.sum((np.asarray(NAMED_COLOURS[k]) - c) ** 2)))


@dataclass
class Material:
    name: str
    kind: str
    color: tuple = (0.7, 0.7, 0.7)
    color2: tuple = (0.5, 0.5, 0.5)
    tile_m: float = 1.0
    seed: int = 0
    emissive: bool = False
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown material kind {self.kind!r}; known: {', '.join(KINDS)}")
        self.color = tuple(float(x) for x in self.color)
        self.color2 = tuple(float(x) for x in self.color2)
        self.emissive = bool(self.emissive or self.kind in EMISSIVE_KINDS)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["color"], d["color2"] = list(self.color), list(self.color2)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Material":
        return cls(**d)
