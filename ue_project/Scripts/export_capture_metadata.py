"""Export a UE level's capture metadata as a relic-suite scene file (kind "unreal").

Run inside the Unreal Editor (Python Editor Script Plugin), with the level open:

    Tools > Execute Python Script...  ->  export_capture_metadata.py       (writes --out; see main)
    # headless, one level / every level under /Game:
    UnrealEditor-Cmd RelicCapture.uproject -run=pythonscript \
        -script="Scripts/export_capture_metadata.py --map /Game/Maps/Level --out /data/scenes/level.json"
    UnrealEditor-Cmd RelicCapture.uproject -run=pythonscript \
        -script="Scripts/export_capture_metadata.py --all --out-dir /data/scenes"

What it writes (JSON; UE units and axes exactly as the editor reports them; datagen converts them
to its own convention when it loads the file, in datagen/scenes/unreal.py through
datagen/conventions.py, nowhere else):

    {"format": "relic-scene", "version": 1, "kind": "unreal",
     "scene_id": "<project>-<level>" (lower-case), "family": "unreal", "map": "/Game/Maps/Level",
     "level_name": "Level", "description": "<--description, else 'the Unreal level Level'>",
     "ue": {"units": "cm", "handedness": "left", "up": "z",
            "walkable_bounds_cm": {"min": [x, y, z], "max": [x, y, z]},
            "spawn_points": [{"name": label, "location_cm": [x, y, z], "rotation_deg": [pitch, yaw, roll]}],
            "camera_height_cm": 160.0},
     "objects": [{"name": <actor object name, as UnrealCV's `vget /objects` lists it>, "label": <editor label>,
                  "class": ..., "category": ..., "description": ...,
                  "bounds_min_cm": [...], "bounds_max_cm": [...], "tags": [...]}]}

Walkable bounds: the union of NavMeshBoundsVolume actors, else of actors tagged "relic_walkable",
else the level's static-mesh bounds shrunk by 1 m on every side. Spawn points: PlayerStart actors
and TargetPoint actors tagged "relic_spawn"; the camera is placed AT the spawn location looking
along its rotation (a PlayerStart sits at capsule centre, ~90 cm above the floor: prefer a
"relic_spawn" TargetPoint at eye height). Object categories/descriptions: actor tags
"category=<x>" and "desc=<text>" when present, else derived from the static mesh asset name.

The pure helpers (everything except collect_from_editor / export_level / main) run without
Unreal, so relic-suite's tests check the export format against datagen's scene loader.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

FORMAT = "relic-scene"
VERSION = 1


def union_bounds(boxes):
    """Union of (min, max) boxes given as ([x, y, z], [x, y, z]) pairs."""
    boxes = list(boxes)
    if not boxes:
        raise ValueError("no boxes to unite")
    lo = [min(b[0][i] for b in boxes) for i in range(3)]
    hi = [max(b[1][i] for b in boxes) for i in range(3)]
    return lo, hi


def category_from_name(name: str) -> str:
    """'SM_Sofa_02' -> 'sofa'; 'BP_OfficeChair' -> 'office chair'."""
    base = re.sub(r"^(SM|S|BP|SK|P)_", "", name)
    base = re.sub(r"[_\-]?\d+$", "", base)
    base = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base).replace("_", " ")
    return base.strip().lower() or "object"


def parse_tags(tags):
    out = {}
    for t in tags:
        if "=" in t:
            k, v = t.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def build_scene_dict(project: str, map_path: str, level_name: str, description: str, walkable, spawns,
                     objects, camera_height_cm: float = 160.0) -> dict:
    """Assemble the scene-file dict from plain data (all values in UE units)."""
    if not spawns:
        raise ValueError("the level has no PlayerStart or 'relic_spawn' TargetPoint: add one to mark free space")
    lo, hi = walkable
    if any(h <= l for l, h in zip(lo, hi)):
        raise ValueError(f"empty walkable bounds {walkable}")
    objs = []
    for o in objects:
        tags = parse_tags(o.get("tags", []))
        cat = tags.get("category") or category_from_name(o.get("mesh") or o["name"])
        objs.append({
            "name": o["name"], "label": o.get("label", o["name"]),
            "class": o.get("class", "StaticMeshActor"), "category": cat,
            "description": tags.get("desc") or f"a {cat}",
            "bounds_min_cm": [float(v) for v in o["bounds_min_cm"]],
            "bounds_max_cm": [float(v) for v in o["bounds_max_cm"]],
            "tags": list(o.get("tags", [])),
        })
    slug = level_scene_id(project, level_name)
    return {
        "format": FORMAT, "version": VERSION, "kind": "unreal",
        "scene_id": slug, "family": "unreal", "map": map_path, "level_name": level_name,
        "description": description or f"the Unreal level {level_name}",
        "ue": {"units": "cm", "handedness": "left", "up": "z",
               "walkable_bounds_cm": {"min": [float(v) for v in lo], "max": [float(v) for v in hi]},
               "spawn_points": [{"name": s["name"], "location_cm": [float(v) for v in s["location_cm"]],
                                 "rotation_deg": [float(v) for v in s["rotation_deg"]]} for s in spawns],
               "camera_height_cm": float(camera_height_cm)},
        "objects": objs,
    }


def write_json_atomic(data: dict, path: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def level_scene_id(project: str, level_name: str) -> str:
    """'<project>-<level>' lower-cased, other characters -> '-'. The SAME rule as
    datagen.scenes.unreal.unreal_scene_id (repeated here: this script runs inside UE without
    datagen); a UE server's `vget /scene/name` (project) + `vget /level/name` (level) give it back."""
    return re.sub(r"[^A-Za-z0-9]+", "-", f"{project}-{level_name}").strip("-").lower()


def collect_from_editor(description: str = "", camera_height_cm: float = 160.0):  # pragma: no cover - needs UE
    """Read the level open in the editor into plain data and build the scene dict."""
    import unreal

    eas = unreal.get_editor_subsystem(unreal.EditorActorSubsystem)
    world = unreal.get_editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()
    actors = eas.get_all_level_actors()

    def bounds(actor):
        origin, extent = actor.get_actor_bounds(False)
        return ([origin.x - extent.x, origin.y - extent.y, origin.z - extent.z],
                [origin.x + extent.x, origin.y + extent.y, origin.z + extent.z])

    nav, tagged, spawns, objects, meshes = [], [], [], [], []
    for a in actors:
        cls = a.get_class().get_name()
        tags = [str(t) for t in a.tags]
        if cls == "NavMeshBoundsVolume":
            nav.append(bounds(a))
        if "relic_walkable" in tags:
            tagged.append(bounds(a))
        if cls == "PlayerStart" or (cls == "TargetPoint" and "relic_spawn" in tags):
            loc, rot = a.get_actor_location(), a.get_actor_rotation()
            spawns.append({"name": a.get_actor_label(), "location_cm": [loc.x, loc.y, loc.z],
                           "rotation_deg": [rot.pitch, rot.yaw, rot.roll]})
        elif cls == "StaticMeshActor":
            comp = a.static_mesh_component
            mesh = comp.static_mesh.get_name() if comp and comp.static_mesh else a.get_actor_label()
            b = bounds(a)
            meshes.append(b)
            # name = the actor's object name: what UnrealCV's `vget /objects` lists in a packaged build
            objects.append({"name": a.get_name(), "label": a.get_actor_label(), "class": cls, "mesh": mesh,
                            "tags": tags, "bounds_min_cm": b[0], "bounds_max_cm": b[1]})
    if nav:
        walkable = union_bounds(nav)
    elif tagged:
        walkable = union_bounds(tagged)
    elif meshes:
        lo, hi = union_bounds(meshes)
        walkable = ([v + 100 for v in lo], [v - 100 for v in hi])
    else:
        raise ValueError("the level has no NavMeshBoundsVolume, no 'relic_walkable' actor and no static meshes")
    project = unreal.Paths.get_base_filename(unreal.Paths.get_project_file_path())
    level_path = world.get_path_name().split(".")[0]
    return build_scene_dict(project, level_path, world.get_name(), description, walkable, spawns, objects,
                            camera_height_cm=camera_height_cm)


def export_level(map_path: str, out_path: str, description: str = "",
                 camera_height_cm: float = 160.0) -> dict:  # pragma: no cover - needs UE
    """Open `map_path` (empty: the level already open) in the editor and write its scene file."""
    import unreal

    if map_path:
        if not unreal.get_editor_subsystem(unreal.LevelEditorSubsystem).load_level(map_path):
            raise RuntimeError(f"could not open level {map_path}")
    data = collect_from_editor(description, camera_height_cm)
    write_json_atomic(data, out_path)
    print(f"wrote {out_path}: scene {data['scene_id']}, {len(data['objects'])} objects, "
          f"{len(data['ue']['spawn_points'])} spawn points")
    return data


def main(argv=None):  # pragma: no cover - needs the Unreal Editor
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="scene file to write (.json) for one level")
    ap.add_argument("--map", default="", help="level to open first, e.g. /Game/Maps/Level (default: the open one)")
    ap.add_argument("--all", action="store_true", help="export every level under /Game into --out-dir")
    ap.add_argument("--out-dir", default="", help="folder for --all (one <scene_id>.json per level)")
    ap.add_argument("--description", default="", help="static text description of the level's content")
    ap.add_argument("--camera-height-cm", type=float, default=160.0, help="eye height above the floor (cm)")
    args = ap.parse_args(argv)
    if args.all:
        if not args.out_dir:
            ap.error("--all needs --out-dir")
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from list_levels import level_paths

        os.makedirs(args.out_dir, exist_ok=True)
        for path in level_paths():
            name = path.rsplit("/", 1)[-1]
            export_level(path, os.path.join(args.out_dir, f"{name}.json"), args.description, args.camera_height_cm)
        return
    if not args.out:
        ap.error("give --out FILE (one level) or --all --out-dir DIR")
    export_level(args.map, args.out, args.description, args.camera_height_cm)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
