"""Raw Unreal level metadata (as exported by ``ue_project/Scripts/export_capture_metadata.py``)
-> the kind "unreal" scene fields in OUR conventions.

The exporter runs inside the Unreal Editor and writes UE's own units and axes under the key
``"ue"`` (centimetres, left-handed, X forward / Y right / Z up, rotators in degrees)::

    "ue": {"units": "cm", "handedness": "left", "up": "z",
           "walkable_bounds_cm": {"min": [x, y, z], "max": [x, y, z]},
           "spawn_points": [{"name": str, "location_cm": [x, y, z], "rotation_deg": [pitch, yaw, roll]}],
           "camera_height_cm": float}

:func:`ue_block_to_ours` fills the loader's fields from it, every conversion going through
:mod:`datagen.conventions`:

* ``bounds_min`` / ``bounds_max`` (m): both box corners converted, then element-wise min/max (Y is
  negated, so UE's min Y becomes our max Y);
* ``spawn_points``: one camera-to-world 4x4 per spawn (``ue_pose_to_c2w``: the camera sits at the
  spawn location and looks along the spawn rotator's forward axis); ``spawn_c2w`` = the first;
* ``camera_height`` (m): camera height above the walkable floor.

Fields already present at the top level are kept (they are in our conventions already).
"""
from __future__ import annotations

import numpy as np

from datagen import conventions as cv


def _vec3(v, where: str) -> list[float]:
    try:
        out = [float(x) for x in v]
    except (TypeError, ValueError):
        out = []
    if len(out) != 3 or not all(np.isfinite(out)):
        raise ValueError(f"unreal scene file: {where} must be 3 finite numbers, got {v!r}")
    return out


def ue_block_to_ours(d: dict) -> dict:
    """A copy of scene-file dict `d` with bounds/spawn/camera height derived from ``d["ue"]``."""
    ue = d.get("ue")
    if not isinstance(ue, dict):
        raise ValueError("unreal scene file: 'ue' must be a mapping of UE-unit metadata")
    if ue.get("units", "cm") != "cm" or ue.get("handedness", "left") != "left" or ue.get("up", "z") != "z":
        raise ValueError("unreal scene file: 'ue' metadata must be in UE's own frame "
                         "(units 'cm', handedness 'left', up 'z')")
    out = dict(d)
    wb = ue.get("walkable_bounds_cm")
    if wb is not None:
        if not isinstance(wb, dict):
            raise ValueError("unreal scene file: ue.walkable_bounds_cm must be {min: [x,y,z], max: [x,y,z]}")
        corners = cv.ue_point_to_ours(np.array([_vec3(wb.get("min"), "ue.walkable_bounds_cm.min"),
                                                _vec3(wb.get("max"), "ue.walkable_bounds_cm.max")]))
        out.setdefault("bounds_min", corners.min(0).tolist())
        out.setdefault("bounds_max", corners.max(0).tolist())
    spawns = []
    for i, sp in enumerate(ue.get("spawn_points") or []):
        if not isinstance(sp, dict):
            raise ValueError(f"unreal scene file: ue.spawn_points[{i}] must be a mapping")
        loc = _vec3(sp.get("location_cm"), f"ue.spawn_points[{i}].location_cm")
        rot = _vec3(sp.get("rotation_deg", [0.0, 0.0, 0.0]), f"ue.spawn_points[{i}].rotation_deg")
        spawns.append(cv.ue_pose_to_c2w(loc, rot).tolist())
    if spawns:
        out.setdefault("spawn_points", spawns)
        out.setdefault("spawn_c2w", spawns[0])
    if ue.get("camera_height_cm") is not None:
        out.setdefault("camera_height", cv.ue_length_to_ours(float(ue["camera_height_cm"])))
    return out


def unreal_scene_id(project: str, level: str) -> str:
    """Scene id of an Unreal level: '<project>-<level>' lower-cased, runs of other characters -> '-'.

    ue_project's exporter writes this id (it repeats the rule: it runs inside UE without datagen),
    and a UE server's ``vget /scene/name`` (the PROJECT name) plus ``vget /level/name`` (the map
    name) give it back, so the capture pipeline can tell which level a server hosts.
    """
    import re

    return re.sub(r"[^A-Za-z0-9]+", "-", f"{project}-{level}").strip("-").lower()


def served_scene_ids(scene_name: str, level_name: str = "") -> list[str]:
    """Candidate scene ids for a server answering `scene_name` / `level_name`: the name itself
    (our embedded server answers the scene id) and, when a level is known, its unreal_scene_id."""
    out = [scene_name]
    if level_name:
        sid = unreal_scene_id(scene_name, level_name)
        if sid not in out:
            out.append(sid)
    return out
