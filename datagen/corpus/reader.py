"""Read a relic-suite corpus (format: :mod:`datagen.corpus.format`).

    from datagen import Corpus
    c = Corpus.open("corpus/")
    c.manifest                      # pandas, one row per episode (format.MANIFEST_COLUMNS)
    train = c.split("train")        # manifest rows of kept/trimmed train episodes
    ep = c.episode(train.episode_id[0])
    ep.poses()    # (N, 4, 4) float64 camera-to-world, metres, OpenCV camera axes
    ep.actions()  # (N, 13) float32, channels in format.ACTION_CHANNELS order
    ep.gamma      # metres per unit translation label
    ep.rgb(0)     # (H, W, 3) uint8 sRGB;  ep.depth(0) -> (H, W) float32 metres, inf = no hit
    ep.frames     # the per-frame table;  ep.revisits, ep.captions, ep.K, ep.meta
    c.verify()    # checksum every file of every episode -> list of problems

Every read checks integrity: opening an episode checks that each file listed in episode.json
exists with its recorded size; reading a file's content checks its sha256. Failures raise
:class:`CorpusIntegrityError` naming the episode and file.
"""
from __future__ import annotations

import io
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import pandas as pd

from datagen.actions import poses_to_actions
from datagen.augment import time_reverse as _tr
from datagen.corpus import format as F
from datagen.corpus.format import CorpusError, CorpusIntegrityError

__all__ = ["Corpus", "Episode", "CorpusError", "CorpusIntegrityError"]


class Episode:
    """One captured episode. Cheap to create; arrays are read (and checksummed) on demand."""

    def __init__(self, path: str | os.PathLike, check_sizes: bool = True):
        """`check_sizes=False` only for :meth:`verify` of a damaged episode (lists every problem)."""
        self.path = Path(path)
        meta_path = self.path / F.EPISODE_JSON
        if not meta_path.is_file():
            raise CorpusIntegrityError(f"episode {self.path.name}: {F.EPISODE_JSON} is missing "
                                       f"(partial or deleted episode at {self.path})")
        try:
            self.meta: dict = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise CorpusIntegrityError(f"episode {self.path.name}: {F.EPISODE_JSON} is corrupt: {e}") from None
        F.check_schema(self.meta, str(meta_path))
        self.episode_id: str = self.meta["episode_id"]
        self.files: dict = self.meta.get("files", {})
        if check_sizes:
            self._check_sizes()
        self._depth: Optional[np.ndarray] = None

    # --- integrity -------------------------------------------------------------------------
    def _check_sizes(self) -> None:
        n = int(self.meta["num_frames"])
        for i in (0, n - 1):
            if F.rgb_name(i) not in self.files:
                raise CorpusIntegrityError(f"episode {self.episode_id}: checksum list lacks {F.rgb_name(i)}")
        for rel, info in self.files.items():
            p = self.path / rel
            try:
                size = p.stat().st_size
            except FileNotFoundError:
                raise CorpusIntegrityError(f"episode {self.episode_id}: file {rel} is missing") from None
            if size != info["bytes"]:
                raise CorpusIntegrityError(f"episode {self.episode_id}: file {rel} has {size} bytes, "
                                           f"expected {info['bytes']} (truncated or replaced)")

    def _read(self, rel: str) -> bytes:
        """File content after checking its sha256 against episode.json."""
        info = self.files.get(rel)
        if info is None:
            raise CorpusIntegrityError(f"episode {self.episode_id}: {rel} is not in the episode's file list")
        try:
            data = (self.path / rel).read_bytes()
        except FileNotFoundError:
            raise CorpusIntegrityError(f"episode {self.episode_id}: file {rel} is missing") from None
        if F.sha256_bytes(data) != info["sha256"]:
            raise CorpusIntegrityError(f"episode {self.episode_id}: file {rel} fails its sha256 check (corrupt)")
        return data

    def verify(self) -> list[str]:
        """All integrity problems of this episode (empty list = intact)."""
        problems = []
        for rel, info in self.files.items():
            p = self.path / rel
            if not p.is_file():
                problems.append(f"{self.episode_id}: {rel} missing")
            elif p.stat().st_size != info["bytes"]:
                problems.append(f"{self.episode_id}: {rel} has wrong size")
            elif F.sha256_file(p) != info["sha256"]:
                problems.append(f"{self.episode_id}: {rel} fails sha256")
        n = self.num_frames
        missing = [i for i in range(n) if F.rgb_name(i) not in self.files]
        if missing:
            problems.append(f"{self.episode_id}: {len(missing)} frames absent from the checksum list")
        return problems

    # --- metadata --------------------------------------------------------------------------
    @property
    def scene_id(self) -> str:
        return self.meta["scene_id"]

    @property
    def num_frames(self) -> int:
        return int(self.meta["num_frames"])

    def __len__(self) -> int:
        return self.num_frames

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    @property
    def gamma(self) -> float:
        """Metres per unit of translation label (the clip's mean non-zero displacement)."""
        return float(self.meta["gamma"])

    @property
    def K(self) -> np.ndarray:
        return np.asarray(self.meta["K"], dtype=np.float64)

    @property
    def width(self) -> int:
        return int(self.meta["width"])

    @property
    def height(self) -> int:
        return int(self.meta["height"])

    @property
    def split(self) -> str:
        return self.meta["split"]

    @property
    def status(self) -> str:
        return self.meta.get("curation", {}).get("status", "kept")

    @property
    def kept_segments(self) -> list[tuple[int, int]]:
        """Curated [start, end) frame ranges to train on."""
        return [tuple(s) for s in self.meta.get("curation", {}).get("kept_segments", [])]

    @property
    def captions(self) -> list[dict]:
        """[{"start_frame", "end_frame" (exclusive), "start_s", "end_s", "text", "objects"}]."""
        return list(self.meta.get("captions", []))

    @cached_property
    def frames(self) -> pd.DataFrame:
        df = pd.read_parquet(io.BytesIO(self._read(F.FRAMES_PARQUET)))
        if len(df) != self.num_frames:
            raise CorpusIntegrityError(f"episode {self.episode_id}: frames table has {len(df)} rows, "
                                       f"expected {self.num_frames}")
        return df

    @cached_property
    def revisits(self) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self._read(F.REVISITS_PARQUET)))

    # --- arrays ----------------------------------------------------------------------------
    def poses(self) -> np.ndarray:
        """(N, 4, 4) float64 camera-to-world (ours: metres, OpenCV camera axes)."""
        return self.frames[list(F.C2W_COLUMNS)].to_numpy(np.float64).reshape(-1, 4, 4)

    def actions(self) -> np.ndarray:
        """(N, 13) float32 RELIC action labels in format.ACTION_CHANNELS order."""
        return self.frames[list(F.ACTION_CHANNELS)].to_numpy(np.float32)

    def kept_mask(self) -> np.ndarray:
        """(N,) bool: frame survives curation."""
        return self.frames["kept"].to_numpy(bool)

    def rgb(self, i: int) -> np.ndarray:
        """Frame i as (H, W, 3) uint8 sRGB."""
        i = self._index(i)
        data = self._read(F.rgb_name(i))
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None or img.shape[:2] != (self.height, self.width):
            raise CorpusIntegrityError(f"episode {self.episode_id}: {F.rgb_name(i)} does not decode to "
                                       f"{self.height}x{self.width}")
        return np.ascontiguousarray(img[:, :, ::-1])

    def rgb_all(self, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
        """Frames [start, stop) as (n, H, W, 3) uint8."""
        stop = self.num_frames if stop is None else stop
        return np.stack([self.rgb(i) for i in range(start, stop)]) if stop > start else \
            np.zeros((0, self.height, self.width, 3), np.uint8)

    def _load_npy(self, rel: str) -> np.ndarray:
        arr = np.load(io.BytesIO(self._read(rel)), allow_pickle=False)
        if arr.shape != (self.num_frames, self.height, self.width):
            raise CorpusIntegrityError(f"episode {self.episode_id}: {rel} has shape {arr.shape}, "
                                       f"expected {(self.num_frames, self.height, self.width)}")
        return arr

    def depth_all(self) -> np.ndarray:
        """(N, H, W) float32 planar depth in metres; inf = no hit."""
        if self._depth is None:
            self._depth = self._load_npy(F.DEPTH_FILE)
        return self._depth

    def depth(self, i: int) -> np.ndarray:
        return self.depth_all()[self._index(i)]

    def mask_all(self) -> Optional[np.ndarray]:
        """(N, H, W) int16 instance ids (index into meta['objects']), -1 = none; None if not stored."""
        return self._load_npy(F.MASK_FILE) if F.MASK_FILE in self.files else None

    def clip(self, start: int, length: int, rng=None, time_reverse: bool = False) -> dict:
        """A training clip of `length` frames from `start`, optionally time-reversed.

        Returns {"indices" (length,) episode frame indices, "rgb" (length,H,W,3) uint8,
        "depth" (length,H,W) float32, "poses" (length,4,4), "actions" (length,13), "gamma"}.
        Actions and gamma are recomputed from the clip's poses (the paper normalises translation
        by the CLIP's mean displacement). With ``time_reverse=True`` the clip is the paper's
        palindrome (datagen.augment.time_reverse, pivot drawn from `rng`, a numpy Generator) and
        its labels come from the re-indexed poses.
        """
        start, length = int(start), int(length)
        if length < 1 or start < 0 or start + length > self.num_frames:
            raise IndexError(f"clip [{start}, {start + length}) is outside episode {self.episode_id} "
                             f"with {self.num_frames} frames")
        poses = self.poses()[start:start + length]
        if time_reverse:
            if rng is None:
                raise ValueError("time_reverse=True needs rng (a numpy Generator) for the pivot")
            local, actions, gamma = _tr(poses, rng)
        else:
            local = np.arange(length)
            actions, gamma = poses_to_actions(poses)
        idx = start + np.asarray(local, dtype=np.int64)
        uniq = np.unique(idx)
        frames = {int(i): self.rgb(int(i)) for i in uniq}
        depth = self.depth_all()
        return {"indices": idx, "rgb": np.stack([frames[int(i)] for i in idx]), "depth": depth[idx],
                "poses": self.poses()[idx], "actions": np.asarray(actions, np.float32), "gamma": float(gamma)}

    def _index(self, i: int) -> int:
        n = self.num_frames
        i = int(i) + (n if int(i) < 0 else 0)
        if not 0 <= i < n:
            raise IndexError(f"frame {i} out of range for episode {self.episode_id} with {n} frames")
        return i

    def __repr__(self) -> str:
        return (f"Episode({self.episode_id!r}, scene={self.scene_id!r}, frames={self.num_frames}, "
                f"{self.width}x{self.height}@{self.fps:g}fps, status={self.status})")


class Corpus:
    """A corpus directory. Use :meth:`open`."""

    def __init__(self, path: Path, header: dict, manifest: pd.DataFrame):
        self.path = path
        self.header = header
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Corpus":
        path = Path(path)
        hp = path / F.CORPUS_JSON
        if not hp.is_file():
            raise FileNotFoundError(f"{path} is not a corpus: {F.CORPUS_JSON} is missing "
                                    "(build one with `relic datagen build --out DIR`)")
        try:
            header = json.loads(hp.read_text())
        except json.JSONDecodeError as e:
            raise CorpusError(f"{hp} is corrupt: {e}") from None
        F.check_schema(header, str(hp))
        mp = path / F.MANIFEST_PARQUET
        if not mp.is_file():
            raise CorpusError(f"{path}: {F.MANIFEST_PARQUET} is missing (build interrupted before the "
                              "first manifest write?); re-run `relic datagen build` to resume")
        try:
            manifest = pd.read_parquet(mp)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types
            raise CorpusError(f"{mp} is unreadable ({type(e).__name__}: {e}); re-run `relic datagen build` "
                              "with the same config and --out to rewrite it") from None
        missing = [c for c in F.MANIFEST_COLUMNS if c not in manifest.columns]
        if missing:
            raise CorpusError(f"{mp} lacks columns {missing}")
        return cls(path, header, manifest)

    @property
    def config(self) -> dict:
        return self.header.get("config", {})

    @property
    def episode_ids(self) -> list[str]:
        return list(self.manifest["episode_id"])

    def __len__(self) -> int:
        return len(self.manifest)

    def episode(self, episode_id: str) -> Episode:
        if episode_id not in set(self.manifest["episode_id"]):
            raise KeyError(f"episode {episode_id!r} is not in the manifest of {self.path}")
        return Episode(self.path / F.EPISODES_DIR / episode_id)

    def episodes(self, split: Optional[str] = None, include_rejected: bool = False):
        """Iterate Episodes (optionally of one split)."""
        rows = self.split(split, include_rejected) if split else \
            (self.manifest if include_rejected else self.manifest[self.manifest.status != "rejected"])
        for eid in rows["episode_id"]:
            yield self.episode(eid)

    def split(self, name: str, include_rejected: bool = False) -> pd.DataFrame:
        """Manifest rows of split `name` ("train", "val" or "test"); rejected episodes excluded."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; use train, val or test")
        m = self.manifest[self.manifest["split"] == name]
        if not include_rejected:
            m = m[m["status"] != "rejected"]
        return m.reset_index(drop=True)

    def verify(self, progress: bool = False) -> list[str]:
        """Check every episode against its checksums and the manifest; returns problems found.

        Also reports episode directories missing from the manifest, manifest rows without a
        directory, and stray in-flight temp dirs.
        """
        problems = []
        root = self.path / F.EPISODES_DIR
        on_disk = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
        listed = set(self.manifest["episode_id"])
        for eid in sorted(listed - on_disk):
            problems.append(f"{eid}: listed in the manifest but its directory is missing")
        for eid in sorted(on_disk - listed):
            problems.append(f"{eid}: directory present but not in the manifest")
        ids = sorted(listed & on_disk)
        it = ids
        if progress:
            from tqdm import tqdm

            it = tqdm(ids, desc="verify", unit="ep")
        for eid in it:
            try:
                ep = Episode(root / eid, check_sizes=False)  # verify() checks every file itself
            except (CorpusError, KeyError, ValueError) as e:
                problems.append(str(e))
                continue
            problems.extend(ep.verify())
        return problems

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r}, episodes={len(self)})"
