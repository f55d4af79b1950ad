"""The relic-suite corpus on-disk format (schema ``relic-corpus``, version 1).

A corpus is a directory that a researcher can open with pandas, numpy and any PNG reader::

    CORPUS/
      corpus.json            dataset header (below)
      manifest.parquet       one row per episode (MANIFEST_COLUMNS); same rows in manifest.csv
      manifest.csv
      episodes/<episode_id>/
        episode.json         episode metadata (below)
        rgb/000000.png ...   one lossless 8-bit sRGB PNG per frame, H x W x 3, frame index zero-padded to 6
        depth.npy            float32 (N, H, W) planar depth in metres (z-buffer depth along the
                             optical axis, NOT ray length); ``inf`` = no hit (sky / void)
        mask.npy             optional int16 (N, H, W) instance ids (index into episode.json
                             ``objects``), -1 = no hit; present only when the config sets store_mask
        frames.parquet       per-frame table (FRAME_COLUMNS); same rows in frames.csv
        frames.csv
        revisits.parquet     revisit pairs (REVISIT_COLUMNS); may have zero rows
      .tmp/                  in-flight episodes of a running build (never read)
      .build.lock            advisory lock held by the running build (datagen.capture.pipeline)

corpus.json
    {"schema": "relic-corpus", "schema_version": 1, "created": ISO-8601 UTC, "config": {...},
     "config_hash": sha256 hex of the canonical JSON of the config, "action_channels": [...13...],
     "conventions": "..."}.  Readers refuse any other schema name or version (:func:`check_schema`).

Per-frame table (``frames.parquet``), one row per frame ``t`` in 0..N-1
    frame (int), time_s (= frame / fps),
    c2w_00 .. c2w_33: the 4x4 camera-to-world pose flattened row-major, OUR convention (metres,
        right-handed world = UE with Y negated, OpenCV camera axes x right / y down / z forward),
    ue_x_cm, ue_y_cm, ue_z_cm, ue_pitch_deg, ue_yaw_deg, ue_roll_deg: the same pose in raw UE
        terms (from ``datagen.conventions.c2w_to_ue_pose``),
    fx, fy, cx, cy: pinhole intrinsics in pixels (pixel centres at integer + 0.5),
    the 13 RELIC action channels by name (ACTION_CHANNELS, paper Algorithm 1, computed from the
        CAPTURED poses; row t is the action from frame t to t+1, the last row repeats per
        ``datagen.actions``),
    kept (bool): frame is inside a kept segment after curation,
    flag_<filter> (bool) for every curation filter (FILTER_NAMES): that filter flagged the frame.

Revisit table (``revisits.parquet``): later, earlier (frame indices, later > earlier),
    pose_dist_m, rot_dist_deg, overlap (fraction of the later view's pixels visible in the earlier),
    gap_s (seconds between the two frames).

episode.json
    schema, schema_version, episode_id, scene_id, family, scene_seed, scene_description, split,
    generator, params, seed, fps, num_frames, duration_s, width, height, fov_deg, K (3x3),
    gamma (metres per unit of translation label, the clip's mean non-zero displacement),
    objects (names; mask ids index this list), object_descriptions,
    captions: [{"start_frame", "end_frame" (exclusive), "start_s", "end_s", "text", "objects"}],
    curation: {"status": "kept"|"trimmed"|"rejected", "reasons": {filter: flagged frame count},
               "reject_reasons": [...], "kept_segments": [[start, end), ...], "kept_frames",
               "removed": [{"start", "end", "reasons"}]},
    backend (name and endpoint), render_seconds,
    files: {relative path: {"bytes": int, "sha256": hex}} for EVERY other file of the episode.

Integrity: an episode directory appears under ``episodes/`` only after all its files are written
(built in ``.tmp/`` and moved with ``os.replace``). A reader checks that every file in ``files``
exists with the recorded size when the episode is opened, and checks the sha256 of a file when it
reads its content (``Corpus.verify`` checks everything). Anything else raises
:class:`CorpusIntegrityError`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from datagen.atomic import atomic_write
from datagen.filebytes import sha256_bytes, sha256_file  # noqa: F401 - the corpus's checksums (F.sha256_*)

SCHEMA_NAME = "relic-corpus"
SCHEMA_VERSION = 1

CORPUS_JSON = "corpus.json"
MANIFEST_PARQUET = "manifest.parquet"
MANIFEST_CSV = "manifest.csv"
EPISODES_DIR = "episodes"
TMP_DIR = ".tmp"
EPISODE_JSON = "episode.json"
RGB_DIR = "rgb"
DEPTH_FILE = "depth.npy"
MASK_FILE = "mask.npy"
FRAMES_PARQUET = "frames.parquet"
FRAMES_CSV = "frames.csv"
REVISITS_PARQUET = "revisits.parquet"

# RELIC action channels, in the fixed order of datagen.actions.CHANNELS (tested to be equal).
ACTION_CHANNELS = (
    "dolly_in", "dolly_out", "truck_left", "truck_right", "pedestal_up", "pedestal_down",
    "tilt_up", "tilt_down", "pan_left", "pan_right", "roll_cw", "roll_ccw", "static",
)

# Curation filters, in report order (see datagen.curation.filters).
FILTER_NAMES = (
    "pan_speed", "abrupt_rotation", "inconsistent_velocity", "micro_jitter", "oscillation",
    "near_collision", "over_exposure", "under_exposure", "flicker", "degenerate", "static_too_long",
)

C2W_COLUMNS = tuple(f"c2w_{r}{c}" for r in range(4) for c in range(4))
UE_COLUMNS = ("ue_x_cm", "ue_y_cm", "ue_z_cm", "ue_pitch_deg", "ue_yaw_deg", "ue_roll_deg")
INTRINSIC_COLUMNS = ("fx", "fy", "cx", "cy")
FLAG_COLUMNS = tuple(f"flag_{n}" for n in FILTER_NAMES)
FRAME_COLUMNS = ("frame", "time_s", *C2W_COLUMNS, *UE_COLUMNS, *INTRINSIC_COLUMNS, *ACTION_CHANNELS,
                 "kept", *FLAG_COLUMNS)
# revisit pairs of an episode and of a benchmark task (a list: it selects DataFrame columns, df[REVISIT_COLUMNS])
REVISIT_COLUMNS = ["later", "earlier", "pose_dist_m", "rot_dist_deg", "overlap", "gap_s"]

MANIFEST_COLUMNS = (
    "episode_id", "scene_id", "family", "scene_seed", "split", "generator", "seed", "num_frames",
    "duration_s", "fps", "width", "height", "gamma", "status", "kept_frames", "kept_s",
    "reject_reasons", "trim_reasons", "num_revisit_pairs", "num_captions", "caption", "sample_weight",
    *(f"frac_{c}" for c in ACTION_CHANNELS),
)
STATUSES = ("kept", "trimmed", "rejected")


class CorpusError(RuntimeError):
    """The directory is not a readable corpus (missing header, unknown schema or version)."""


class CorpusIntegrityError(CorpusError):
    """An episode is partial or corrupt (missing file, wrong size, wrong checksum)."""


def rgb_name(i: int) -> str:
    """Relative path of frame i's PNG inside an episode directory."""
    return f"{RGB_DIR}/{i:06d}.png"


def check_schema(header: dict, where: str) -> None:
    """Raise CorpusError unless `header` names this schema and a version this reader knows."""
    name, version = header.get("schema"), header.get("schema_version")
    if name != SCHEMA_NAME:
        raise CorpusError(f"{where}: schema is {name!r}, expected {SCHEMA_NAME!r}; not a relic-suite corpus")
    if version != SCHEMA_VERSION:
        raise CorpusError(f"{where}: schema_version {version!r} is not supported by this reader "
                          f"(supports {SCHEMA_VERSION}); rebuild the corpus or upgrade relic-suite")


def canonical_json(obj) -> str:
    """Deterministic JSON text (sorted keys, no whitespace) used for hashing configs."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write JSON to `path` atomically (:func:`datagen.atomic.atomic_write`)."""
    def write(tmp: Path) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, default=_json_default)
            f.write("\n")

    atomic_write(path, write)
