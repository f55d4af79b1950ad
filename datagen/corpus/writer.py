"""Write corpus episodes atomically, plus the corpus header and manifest (format: ``format.py``).

An episode is assembled in ``CORPUS/.tmp/<episode_id>.<pid>/`` and moved to
``CORPUS/episodes/<episode_id>/`` with one ``os.replace`` once every file (and the checksum list
in episode.json) is written, so a killed writer leaves only a stray temp dir, never a partial
episode under ``episodes/``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import pandas as pd

from datagen.atomic import atomic_write
from datagen.corpus import format as F
from datagen.curation.balance import manifest_weights
from datagen.filebytes import npy_bytes


@dataclass
class EpisodeRecord:
    """Everything one episode writes. Arrays follow format.py (rgb uint8 (N,H,W,3) sRGB,
    depth float32 (N,H,W) metres, mask int (N,H,W) or None); `frames` has F.FRAME_COLUMNS;
    `revisits` has F.REVISIT_COLUMNS; `meta` becomes episode.json (files/schema are added here)."""

    episode_id: str
    rgb: np.ndarray
    depth: np.ndarray
    frames: pd.DataFrame
    revisits: pd.DataFrame
    meta: dict
    mask: Optional[np.ndarray] = None
    extra: dict = field(default_factory=dict)


def episode_dir(corpus_dir: str | os.PathLike, episode_id: str) -> Path:
    return Path(corpus_dir) / F.EPISODES_DIR / episode_id


def is_episode_complete(corpus_dir: str | os.PathLike, episode_id: str) -> bool:
    """True if the episode was moved into place (its episode.json exists)."""
    return (episode_dir(corpus_dir, episode_id) / F.EPISODE_JSON).is_file()


def _write_bytes(path: Path, data: bytes, files: dict, rel: str) -> None:
    with open(path, "wb") as f:
        f.write(data)
    files[rel] = {"bytes": len(data), "sha256": F.sha256_bytes(data)}


def _parquet_and_csv(df: pd.DataFrame, d: Path, stem: str, files: dict, csv: bool) -> None:
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    _write_bytes(d / f"{stem}.parquet", buf.getvalue(), files, f"{stem}.parquet")
    if csv:
        _write_bytes(d / f"{stem}.csv", df.to_csv(index=False).encode(), files, f"{stem}.csv")


def write_episode(corpus_dir: str | os.PathLike, rec: EpisodeRecord, png_compression: int = 1) -> Path:
    """Write `rec` into the corpus atomically; returns the final episode directory.

    If the episode already exists (another worker finished it first) the new copy is discarded.
    """
    corpus_dir = Path(corpus_dir)
    final = episode_dir(corpus_dir, rec.episode_id)
    tmp_root = corpus_dir / F.TMP_DIR
    tmp_root.mkdir(parents=True, exist_ok=True)
    (corpus_dir / F.EPISODES_DIR).mkdir(parents=True, exist_ok=True)
    tmp = tmp_root / f"{rec.episode_id}.{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / F.RGB_DIR).mkdir(parents=True)
    files: dict[str, dict] = {}
    n = int(rec.rgb.shape[0])
    if rec.depth.shape[0] != n or len(rec.frames) != n:
        raise ValueError(f"episode {rec.episode_id}: rgb has {n} frames, depth {rec.depth.shape[0]}, "
                         f"frames table {len(rec.frames)}")
    params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    for i in range(n):
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(rec.rgb[i][:, :, ::-1]), params)
        if not ok:
            raise RuntimeError(f"episode {rec.episode_id}: PNG encoding failed at frame {i}")
        rel = F.rgb_name(i)
        _write_bytes(tmp / rel, buf.tobytes(), files, rel)
    _write_bytes(tmp / F.DEPTH_FILE, npy_bytes(np.ascontiguousarray(rec.depth, dtype=np.float32)), files, F.DEPTH_FILE)
    if rec.mask is not None:
        _write_bytes(tmp / F.MASK_FILE, npy_bytes(np.ascontiguousarray(rec.mask, dtype=np.int16)), files, F.MASK_FILE)
    _parquet_and_csv(rec.frames, tmp, "frames", files, csv=True)
    _parquet_and_csv(rec.revisits, tmp, "revisits", files, csv=False)
    meta = {"schema": F.SCHEMA_NAME, "schema_version": F.SCHEMA_VERSION, **rec.meta, "files": files}
    with open(tmp / F.EPISODE_JSON, "w") as f:
        json.dump(meta, f, indent=1, default=F._json_default)
        f.write("\n")
    try:
        os.replace(tmp, final)
    except OSError:
        if is_episode_complete(corpus_dir, rec.episode_id):  # duplicate: keep the first copy
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise
    return final


def clean_tmp(corpus_dir: str | os.PathLike) -> int:
    """Remove leftovers of killed builds in CORPUS/.tmp; returns how many were removed."""
    tmp_root = Path(corpus_dir) / F.TMP_DIR
    if not tmp_root.is_dir():
        return 0
    n = 0
    for p in tmp_root.iterdir():
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        n += 1
    return n


def corpus_header(config: dict) -> dict:
    return {
        "schema": F.SCHEMA_NAME,
        "schema_version": F.SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "config_hash": F.sha256_bytes(F.canonical_json(config).encode()),
        "action_channels": list(F.ACTION_CHANNELS),
        "filters": list(F.FILTER_NAMES),
        "conventions": "poses: camera-to-world 4x4, metres, right-handed world (UE with Y negated), "
                       "OpenCV camera axes; depth: planar metres float32, inf = no hit",
    }


def init_corpus(corpus_dir: str | os.PathLike, config: dict) -> dict:
    """Create (or re-open for resuming) a corpus directory for `config`.

    A corpus built from a different config is refused (mixing configs would make the
    manifest inconsistent): pick a new --out or delete the old corpus.
    """
    corpus_dir = Path(corpus_dir)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    path = corpus_dir / F.CORPUS_JSON
    new = corpus_header(config)
    if path.exists():
        old = json.loads(path.read_text())
        F.check_schema(old, str(path))
        if old.get("config_hash") != new["config_hash"]:
            raise ValueError(f"{corpus_dir} already holds a corpus built from a different config "
                             f"(config_hash {old.get('config_hash', '?')[:12]} != {new['config_hash'][:12]}); "
                             "use another --out or delete it")
        return old
    F.write_json_atomic(path, new)
    return new


def manifest_row(meta: dict) -> dict:
    """One manifest row (F.MANIFEST_COLUMNS) from an episode.json dict."""
    cur = meta.get("curation", {})
    caps = meta.get("captions", [])
    removed = cur.get("removed", [])
    trim_reasons = sorted({r for seg in removed for r in seg.get("reasons", [])})
    return {
        "episode_id": meta["episode_id"], "scene_id": meta["scene_id"], "family": meta["family"],
        "scene_seed": int(meta["scene_seed"]), "split": meta["split"], "generator": meta["generator"],
        "seed": int(meta["seed"]), "num_frames": int(meta["num_frames"]), "duration_s": float(meta["duration_s"]),
        "fps": float(meta["fps"]), "width": int(meta["width"]), "height": int(meta["height"]),
        "gamma": float(meta["gamma"]), "status": cur.get("status", "kept"),
        "kept_frames": int(cur.get("kept_frames", meta["num_frames"])),
        "kept_s": float(cur.get("kept_frames", meta["num_frames"])) / float(meta["fps"]),
        "reject_reasons": "|".join(cur.get("reject_reasons", [])),
        "trim_reasons": "|".join(trim_reasons),
        "num_revisit_pairs": int(meta.get("num_revisit_pairs", 0)),
        "num_captions": len(caps), "caption": caps[0]["text"] if caps else "",
        "sample_weight": 0.0 if cur.get("status") == "rejected" else 1.0,
        **{f"frac_{c}": float(meta.get("action_fractions", {}).get(c, 0.0)) for c in F.ACTION_CHANNELS},
    }


def write_manifest(corpus_dir: str | os.PathLike, rows: list[dict], rebalance: bool = False,
                   power: float = 1.0) -> pd.DataFrame:
    """Write manifest.parquet and manifest.csv atomically (rows sorted by episode_id).

    sample_weight is recomputed over all rows (datagen.curation.balance.manifest_weights).
    """
    corpus_dir = Path(corpus_dir)
    df = pd.DataFrame(rows, columns=list(F.MANIFEST_COLUMNS))
    if len(df):
        df = df.sort_values("episode_id", kind="stable").reset_index(drop=True)
        df["sample_weight"] = manifest_weights(df, rebalance, power)
    for name, writer in ((F.MANIFEST_PARQUET, lambda p: df.to_parquet(p, index=False)),
                         (F.MANIFEST_CSV, lambda p: df.to_csv(p, index=False))):
        atomic_write(corpus_dir / name, writer)
    return df


def rebuild_manifest(corpus_dir: str | os.PathLike, rebalance: bool = False, power: float = 1.0) -> pd.DataFrame:
    """Rebuild the manifest from every complete episode's episode.json."""
    root = Path(corpus_dir) / F.EPISODES_DIR
    rows = []
    if root.is_dir():
        for d in sorted(root.iterdir()):
            p = d / F.EPISODE_JSON
            if p.is_file():
                rows.append(manifest_row(json.loads(p.read_text())))
    return write_manifest(corpus_dir, rows, rebalance, power)
