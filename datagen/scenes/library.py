"""The scene library: families, generation, scene files (save / load), user meshes, UE metadata.

Scene file (JSON, UTF-8)::

    {"format": "relic-scene", "version": 1, "kind": "procedural",
     "family": "apartment", "seed": 7, "generator_version": 1, "params": {}}
    {"format": "relic-scene", "version": 1, "kind": "mesh", "name": "...",
     "meshes": [{"path": "a.glb", "category": "mesh", "description": "...",
                 "material": {...Material...} | null}], "camera_height": 1.6,
     "spawn_c2w": [[...]] | null, "bounds_min": [...] | null, "bounds_max": [...] | null}
    {"format": "relic-scene", "version": 1, "kind": "unreal", "map": "/Game/Maps/X",
     "scene_id": "...", "description": "...", "bounds_min": [...], "bounds_max": [...],
     "spawn_c2w": [[...]], "spawn_points": [[[...]]], "camera_height": 1.7,
     "objects": [{"name", "category", "description"}]}
    (an "unreal" file may instead carry raw UE-unit metadata under "ue", as ue_project's exporter
    writes it; datagen.scenes.unreal converts it to the fields above on load)

Procedural scenes are regenerated from (family, seed, generator_version, params): the generator
is deterministic, so a reload gives bit-identical geometry and renders. Mesh paths are
resolved relative to the scene file's folder. Unreal scenes carry metadata only (in OUR
conventions: metres, right-handed); their geometry methods raise SceneGeometryUnavailable.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from datagen.atomic import atomic_write_text
from datagen.scenes.families import indoor, outdoor
from datagen.scenes.meshes import mesh_scene_from_dict
from datagen.scenes.procedural import GENERATOR_VERSION
from datagen.scenes.scene import SCENE_FORMAT, SCENE_VERSION, Scene, SceneObject
from datagen.scenes.unreal import ue_block_to_ours

_FAMILY_INFO = {
    "apartment": "multi-room home: living room, kitchen, bedrooms, bathroom, study; doors, windows, furniture, paintings",
    "office": "office floor: open-plan desk clusters, meeting room, lobby, kitchenette; posters, whiteboards",
    "street": "city street: asphalt road with markings, sidewalks, brick/plaster/glass buildings, cars, lamps, trees",
    "park": "park: grassy rolling terrain, gravel paths, trees, bushes, benches, a pond, lamps",
    "forest": "forest: dense trees on hilly terrain, rocks, fallen logs, a dirt trail",
}
FAMILIES: list[str] = list(_FAMILY_INFO)


def describe_families() -> dict[str, str]:
    """family name -> one-line description of what its scenes contain."""
    return dict(_FAMILY_INFO)


def generate_scene(family: str, seed: int, params: dict | None = None) -> Scene:
    """Deterministically generate scene `seed` of `family` (see FAMILIES)."""
    if family not in _FAMILY_INFO:
        raise ValueError(f"unknown scene family {family!r}; choose one of: {', '.join(FAMILIES)}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if family in ("apartment", "office"):
        return indoor.generate(family, seed, params)
    return outdoor.generate(family, seed, params)


def save_scene(scene: Scene, path) -> Path:
    """Write `scene`'s file (JSON spec, see module doc) atomically; returns the path."""
    path = Path(path)
    d = scene.to_dict()
    if scene.kind == "mesh":  # keep mesh paths valid from the new file's folder
        base = Path(scene.base_dir or Path.cwd())
        d["meshes"] = [dict(e) for e in d.get("meshes", [])]
        for e in d["meshes"]:
            src = Path(e["path"])
            src = (src if src.is_absolute() else base / src).resolve()
            try:
                e["path"] = os.path.relpath(src, path.parent.resolve())
            except ValueError:  # another drive (Windows)
                e["path"] = str(src)
    atomic_write_text(path, json.dumps(d, indent=1) + "\n")
    return path


def load_scene(path) -> Scene:
    """Read a scene file written by :func:`save_scene` (or by hand / the UE export scripts)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scene file {path} does not exist (make one with `relic datagen scene "
                                f"--family apartment --seed 0 --out {path}`)")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"scene file {path} is not valid JSON: {e}") from None
    return scene_from_dict(d, base_dir=path.parent)


def scene_from_dict(d: dict, base_dir=None) -> Scene:
    if not isinstance(d, dict) or d.get("format") != SCENE_FORMAT:
        raise ValueError(f"not a relic scene: expected 'format': '{SCENE_FORMAT}'")
    if int(d.get("version", -1)) != SCENE_VERSION:
        raise ValueError(f"scene file version {d.get('version')} is not supported (this is version {SCENE_VERSION})")
    kind = d.get("kind")
    if kind == "procedural":
        gv = int(d.get("generator_version", GENERATOR_VERSION))
        if gv != GENERATOR_VERSION:
            raise ValueError(f"scene was made by generator version {gv}; this code has version {GENERATOR_VERSION} "
                             "and would not reproduce it bit-identically")
        return generate_scene(d["family"], int(d["seed"]), d.get("params") or {})
    if kind == "mesh":
        return mesh_scene_from_dict(d, base_dir=base_dir)
    if kind == "unreal":
        return unreal_scene_from_dict(d)
    raise ValueError(f"unknown scene kind {kind!r}: expected 'procedural', 'mesh' or 'unreal'")


def unreal_scene_from_dict(d: dict) -> Scene:
    """Metadata-only scene of an Unreal level (no geometry; for the UnrealCV backend)."""
    if "ue" in d:  # raw UE-unit metadata from ue_project's exporter: convert (datagen.scenes.unreal)
        d = ue_block_to_ours(d)
    for key in ("map", "bounds_min", "bounds_max"):
        if key not in d:
            raise ValueError(f"unreal scene file lacks {key!r}")
    objs = [SceneObject(o["name"], o.get("category", "object"), o.get("description", o["name"]),
                        o.get("material", "")) for o in d.get("objects", [])]
    bmin, bmax = np.asarray(d["bounds_min"], float), np.asarray(d["bounds_max"], float)
    spawn = d.get("spawn_c2w")
    if spawn is None:
        pts = d.get("spawn_points") or []
        spawn = pts[0] if pts else None
    if spawn is None:
        spawn = np.eye(4)
        spawn[:3, 3] = (bmin + bmax) / 2
    spec = {k: v for k, v in d.items() if k not in ("format", "version", "kind")}
    return Scene(scene_id=d.get("scene_id", str(d["map"]).rsplit("/", 1)[-1]), family=d.get("family", "unreal"),
                 seed=int(d.get("seed", 0)), description=d.get("description", f"Unreal level {d['map']}"),
                 objects=objs, materials=[], bounds_min=bmin, bounds_max=bmax, spawn_c2w=np.asarray(spawn, float),
                 camera_height=float(d.get("camera_height", 1.7)), spec=spec, kind="unreal")
