"""Train / val / test splits by SCENE, never by episode.

Rule (deterministic, independent of corpus contents, documented in datagen/README.md):

    b = int(sha256(scene_id.encode("utf-8")).hexdigest()[:8], 16) % 100
    split = "train" if b < 80 else "val" if b < 90 else "test"

So about 80 % / 10 % / 10 % of scenes. Every episode of a scene shares the scene's split, so
no test scene contributes a single frame to training. The benchmark builds its tasks ONLY from
scenes for which :func:`scene_split` returns "test" (held out entirely from training and
validation). :func:`seeds_for_split` finds scene seeds of a family that land in a wanted split,
which is how a corpus config can ask for "2 train, 1 val, 1 test scene per family".
"""
from __future__ import annotations

import hashlib
from typing import Callable

SPLITS = ("train", "val", "test")
TRAIN_PERCENT = 80
VAL_PERCENT = 10  # test gets the remaining 10


def scene_bucket(scene_id: str) -> int:
    """The scene's hash bucket in 0..99."""
    return int(hashlib.sha256(scene_id.encode("utf-8")).hexdigest()[:8], 16) % 100


def scene_split(scene_id: str) -> str:
    """"train" | "val" | "test" for a scene id (rule in the module docstring)."""
    if not isinstance(scene_id, str) or not scene_id:
        raise ValueError(f"scene_id must be a non-empty string, got {scene_id!r}")
    b = scene_bucket(scene_id)
    if b < TRAIN_PERCENT:
        return "train"
    if b < TRAIN_PERCENT + VAL_PERCENT:
        return "val"
    return "test"


def is_test_scene(scene_id: str) -> bool:
    """True for held-out benchmark scenes."""
    return scene_split(scene_id) == "test"


def seeds_for_split(scene_id_of: Callable[[int], str], split: str, count: int, start: int = 0,
                    max_tries: int = 100000) -> list[int]:
    """The first `count` seeds >= start whose scene id (``scene_id_of(seed)``) is in `split`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    out, seed = [], start
    while len(out) < count:
        if seed - start > max_tries:
            raise RuntimeError(f"no {count} seeds for split {split!r} within {max_tries} tries")
        if scene_split(scene_id_of(seed)) == split:
            out.append(seed)
        seed += 1
    return out
