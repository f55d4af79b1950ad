"""Captions: one per 5-second segment, describing only STATIC scene content in view.

For segment [start, end) (``segment_s`` seconds of frames, the last one may be shorter), an
object is "in view" when its instance mask covers at least ``min_coverage`` of the pixels in at
least ``min_frame_fraction`` of the segment's frames. The caption is::

    "<scene phrase>. In view: <desc 1>, <desc 2> and <desc 3>."

The scene phrase is the scene description up to its first ':', ';' or '.' (e.g. "A 4-room
apartment"), because the rest of a scene description lists rooms and objects that are usually
NOT in view during the segment; what is in view comes from the masks.

with objects ordered by mean coverage (largest first, at most ``max_objects``, duplicate phrases
merged). Only the scene's and objects' own description phrases are used, so captions never
mention the camera or its motion (the paper's rule); :data:`MOTION_WORDS` lists the words a
caption must not contain and :func:`caption_segments` drops any phrase that contains one.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np

MOTION_WORDS = frozenset("""camera cameras pan pans panning panned tilt tilts tilting tilted dolly dollies
dollying truck trucking pedestal roll rolls rolling rotate rotates rotating rotation turn turns turning
turned move moves moving moved motion zoom zooms zooming walk walks walking fly flies flying forward
backward backwards approach approaches approaching orbit orbiting look looks looking glance""".split())


def has_motion_words(text: str) -> bool:
    return any(w in MOTION_WORDS for w in re.findall(r"[a-z]+", text.lower()))


def _clean(phrase: str) -> str:
    return " ".join(str(phrase).strip().rstrip(".").split())


def _join(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def visible_objects(mask: np.ndarray, num_objects: int, min_coverage: float = 0.02,
                    min_frame_fraction: float = 0.25) -> list[tuple[int, float]]:
    """Objects in view over a stack of masks (n, H, W): [(object id, mean coverage)], largest first."""
    n = len(mask)
    if n == 0 or num_objects == 0:
        return []
    flat = mask.reshape(n, -1)
    cov = np.zeros((n, num_objects))
    for i in range(n):
        ids = flat[i][flat[i] >= 0]
        if ids.size:
            cov[i] = np.bincount(ids, minlength=num_objects)[:num_objects] / flat.shape[1]
    present = (cov >= min_coverage).mean(axis=0) >= min_frame_fraction
    mean = cov.mean(axis=0)
    ids = [int(j) for j in np.flatnonzero(present)]
    return sorted(((j, float(mean[j])) for j in ids), key=lambda t: -t[1])


def scene_phrase(scene_description: str) -> str:
    """The scene description's first clause (up to ':', ';' or '.')."""
    return _clean(re.split(r"[:;.]", str(scene_description), maxsplit=1)[0])


def caption_text(scene_description: str, phrases: Sequence[str]) -> str:
    scene = scene_phrase(scene_description)
    if has_motion_words(scene):
        scene = ""
    parts = []
    seen = set()
    for p in phrases:
        p = _clean(p)
        if p and p.lower() not in seen and not has_motion_words(p):
            seen.add(p.lower())
            parts.append(p)
    text = (scene + ".") if scene else ""
    if parts:
        text = (text + " " if text else "") + "In view: " + _join(parts) + "."
    return text or "A static scene."


def caption_segments(mask: Optional[np.ndarray], fps: float, scene_description: str,
                     object_descriptions: Sequence[str], object_names: Optional[Sequence[str]] = None,
                     segment_s: float = 5.0, min_coverage: float = 0.02, min_frame_fraction: float = 0.25,
                     max_objects: int = 6, num_frames: Optional[int] = None) -> list[dict]:
    """One caption per `segment_s` window of frames.

    mask: (N, H, W) instance ids (-1 = none) or None (then captions carry only the scene description).
    Returns [{"start_frame", "end_frame" (exclusive), "start_s", "end_s", "text", "objects"}].
    """
    if mask is None and num_frames is None:
        raise ValueError("caption_segments needs a mask stack or num_frames")
    n = len(mask) if mask is not None else int(num_frames)
    seg = max(1, int(round(segment_s * fps)))
    names = list(object_names) if object_names is not None else [str(i) for i in range(len(object_descriptions))]
    out = []
    for s in range(0, n, seg):
        e = min(n, s + seg)
        vis = [] if mask is None else visible_objects(mask[s:e], len(object_descriptions), min_coverage,
                                                      min_frame_fraction)[:max_objects]
        phrases = [object_descriptions[j] for j, _ in vis]
        out.append({"start_frame": s, "end_frame": e, "start_s": s / fps, "end_s": e / fps,
                    "text": caption_text(scene_description, phrases), "objects": [names[j] for j, _ in vis]})
    return out
