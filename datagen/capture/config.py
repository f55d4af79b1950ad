"""Corpus build configuration: YAML -> validated :class:`CorpusConfig`, and the episode plan.

YAML layout (every key optional except ``scenes`` and ``episodes``; defaults shown)::

    name: default              # free text
    seed: 0                    # master seed; episode seeds derive from it (see plan_episodes)
    fps: 16                    # frames per second of every episode
    width: 112                 # pixels
    height: 64
    fov_deg: 90.0              # horizontal field of view, degrees
    store_mask: false          # also write mask.npy (instance ids) per episode
    png_compression: 1         # 0..9, PNG zlib level (lossless at every level)
    scenes:                    # list; each item is one of
      - {family: apartment, train: 2, val: 1, test: 1}   # that many scenes per split (seeds found
                                                         # with datagen.curation.splits.seeds_for_split)
      - {family: forest, seeds: [3, 7]}                  # explicit scene seeds
      - {file: scenes/my_level.json}                     # a scene file (relic-scene JSON: procedural,
                                                         # mesh, or an Unreal level's metadata for the
                                                         # unrealcv backend); relative to the YAML file
    episodes:                  # recorded in EVERY scene
      - {generator: explore, duration_s: 20, count: 1, params: {}}
    revisits: {min_gap_s: 2.0, max_dist_m: 1.5, max_rot_deg: 45.0, min_overlap: 0.5}  # -> datagen.revisit_pairs
    curation: {...}            # datagen.curation.filters.CurationThresholds fields
    captions: {segment_s: 5.0, min_coverage: 0.02, min_frame_fraction: 0.25, max_objects: 6}
    balance: {rebalance: false, active_threshold: 0.1, power: 1.0}   # see datagen.curation.balance

Errors name the offending key, e.g. ``config.episodes[1].duration_s: must be a positive number``.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from datagen.corpus.format import canonical_json
from datagen.curation.filters import CurationThresholds
from datagen.curation.splits import SPLITS, scene_split, seeds_for_split
from datagen.scenes.library import FAMILIES, load_scene
from datagen.trajectories import GENERATORS

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default_corpus.yaml"

REVISIT_KEYS = {"min_gap_s": 2.0, "max_dist_m": 1.5, "max_rot_deg": 45.0, "min_overlap": 0.5,
                "max_pairs_per_frame": 1}
CAPTION_KEYS = {"segment_s": 5.0, "min_coverage": 0.02, "min_frame_fraction": 0.25, "max_objects": 6}
BALANCE_KEYS = {"rebalance": False, "active_threshold": 0.1, "power": 1.0}
TOP_KEYS = {"name", "seed", "fps", "width", "height", "fov_deg", "store_mask", "png_compression", "scenes",
            "episodes", "revisits", "curation", "captions", "balance"}


def scene_id_for(family: str, seed: int) -> str:
    """Scene id of a procedural scene (the scene library's rule: '<family>-<seed:04d>')."""
    return f"{family}-{int(seed):04d}"


@dataclass
class EpisodeSpec:
    """One (scene, trajectory) to capture."""

    episode_id: str
    family: str
    scene_seed: int
    scene_id: str
    split: str
    generator: str
    seed: int
    duration_s: float
    params: dict = field(default_factory=dict)
    scene_file: Optional[str] = None  # absolute path of a scene file, else None (procedural family/seed)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CorpusConfig:
    name: str = "corpus"
    seed: int = 0
    fps: float = 16.0
    width: int = 112
    height: int = 64
    fov_deg: float = 90.0
    store_mask: bool = False
    png_compression: int = 1
    scenes: list = field(default_factory=list)
    episodes: list = field(default_factory=list)
    revisits: dict = field(default_factory=lambda: dict(REVISIT_KEYS))
    curation: dict = field(default_factory=dict)
    captions: dict = field(default_factory=lambda: dict(CAPTION_KEYS))
    balance: dict = field(default_factory=lambda: dict(BALANCE_KEYS))

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def thresholds(self) -> CurationThresholds:
        return CurationThresholds.from_dict(self.curation)

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()


def _num(v: Any, where: str, positive: bool = True, integer: bool = False, lo=None, hi=None):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if integer:
        ok = ok and float(v).is_integer()
    if ok and positive:
        ok = v > 0
    if ok and lo is not None:
        ok = v >= lo
    if ok and hi is not None:
        ok = v <= hi
    if not ok:
        kind = "integer" if integer else "number"
        rng = f" in [{lo}, {hi}]" if lo is not None and hi is not None else ""
        raise ValueError(f"{where}: must be a {'positive ' if positive else ''}{kind}{rng}, got {v!r}")
    return int(v) if integer else float(v)


def _section(d: Any, defaults: dict, where: str) -> dict:
    if d is None:
        return dict(defaults)
    if not isinstance(d, dict):
        raise ValueError(f"{where}: must be a mapping, got {type(d).__name__}")
    bad = sorted(set(d) - set(defaults))
    if bad:
        raise ValueError(f"{where}: unknown key(s) {bad}; known: {sorted(defaults)}")
    out = dict(defaults)
    for k, v in d.items():
        if isinstance(defaults[k], bool):
            if not isinstance(v, bool):
                raise ValueError(f"{where}.{k}: must be true or false, got {v!r}")
            out[k] = v
        else:
            out[k] = _num(v, f"{where}.{k}", positive=k not in ("min_coverage", "min_frame_fraction", "min_overlap"),
                          integer=isinstance(defaults[k], int))
    return out


def config_from_dict(d: Any, where: str = "config") -> CorpusConfig:
    """Validate a parsed YAML mapping; every error message names the bad key."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: must be a mapping of keys to values, got {type(d).__name__}")
    bad = sorted(set(d) - TOP_KEYS)
    if bad:
        raise ValueError(f"{where}: unknown key(s) {bad}; known: {sorted(TOP_KEYS)}")
    c = CorpusConfig()
    c.name = str(d.get("name", c.name))
    c.seed = _num(d.get("seed", 0), f"{where}.seed", positive=False, integer=True, lo=0)
    c.fps = _num(d.get("fps", c.fps), f"{where}.fps")
    c.width = _num(d.get("width", c.width), f"{where}.width", integer=True, lo=8, hi=8192)
    c.height = _num(d.get("height", c.height), f"{where}.height", integer=True, lo=8, hi=8192)
    c.fov_deg = _num(d.get("fov_deg", c.fov_deg), f"{where}.fov_deg", lo=1, hi=179)
    for key in ("store_mask",):
        v = d.get(key, getattr(c, key))
        if not isinstance(v, bool):
            raise ValueError(f"{where}.{key}: must be true or false, got {v!r}")
        setattr(c, key, v)
    c.png_compression = _num(d.get("png_compression", 1), f"{where}.png_compression", positive=False,
                             integer=True, lo=0, hi=9)

    scenes = d.get("scenes")
    if not isinstance(scenes, list) or not scenes:
        raise ValueError(f"{where}.scenes: must be a non-empty list of {{family: ..., seeds: [...]}} "
                         f"or {{family: ..., train: n, val: n, test: n}}, got {scenes!r}")
    for i, s in enumerate(scenes):
        w = f"{where}.scenes[{i}]"
        if not isinstance(s, dict):
            raise ValueError(f"{w}: must be a mapping, got {s!r}")
        bad = sorted(set(s) - {"family", "seeds", "train", "val", "test", "seed_start", "file"})
        if bad:
            raise ValueError(f"{w}: unknown key(s) {bad}; known: family, seeds, train, val, test, seed_start, file")
        if "file" in s:
            if set(s) != {"file"}:
                raise ValueError(f"{w}: a scene file entry takes only 'file', got {sorted(s)}")
            if not isinstance(s["file"], str) or not s["file"]:
                raise ValueError(f"{w}.file: must be a path to a scene file, got {s['file']!r}")
            continue
        if not isinstance(s.get("family"), str) or not s["family"]:
            raise ValueError(f"{w}.family: must be a scene family name, got {s.get('family')!r}")
        if "seeds" in s:
            if not isinstance(s["seeds"], list) or not s["seeds"]:
                raise ValueError(f"{w}.seeds: must be a non-empty list of integers, got {s['seeds']!r}")
            for j, v in enumerate(s["seeds"]):
                _num(v, f"{w}.seeds[{j}]", positive=False, integer=True, lo=0)
            if any(k in s for k in SPLITS):
                raise ValueError(f"{w}: give either seeds or per-split counts (train/val/test), not both")
        else:
            if not any(k in s for k in SPLITS):
                raise ValueError(f"{w}: needs seeds: [...] or counts train/val/test")
            for k in SPLITS:
                _num(s.get(k, 0), f"{w}.{k}", positive=False, integer=True, lo=0)
        if "seed_start" in s:
            _num(s["seed_start"], f"{w}.seed_start", positive=False, integer=True, lo=0)
    c.scenes = scenes

    eps = d.get("episodes")
    if not isinstance(eps, list) or not eps:
        raise ValueError(f"{where}.episodes: must be a non-empty list of {{generator: ..., duration_s: ...}}, got {eps!r}")
    for i, e in enumerate(eps):
        w = f"{where}.episodes[{i}]"
        if not isinstance(e, dict):
            raise ValueError(f"{w}: must be a mapping, got {e!r}")
        bad = sorted(set(e) - {"generator", "duration_s", "count", "params"})
        if bad:
            raise ValueError(f"{w}: unknown key(s) {bad}; known: generator, duration_s, count, params")
        if not isinstance(e.get("generator"), str):
            raise ValueError(f"{w}.generator: must be a generator name, got {e.get('generator')!r}")
        _num(e.get("duration_s"), f"{w}.duration_s")
        _num(e.get("count", 1), f"{w}.count", integer=True)
        if not isinstance(e.get("params", {}), dict):
            raise ValueError(f"{w}.params: must be a mapping, got {e.get('params')!r}")
    c.episodes = [{"generator": e["generator"], "duration_s": float(e["duration_s"]), "count": int(e.get("count", 1)),
                   "params": dict(e.get("params", {}))} for e in eps]

    c.revisits = _section(d.get("revisits"), REVISIT_KEYS, f"{where}.revisits")
    c.captions = _section(d.get("captions"), CAPTION_KEYS, f"{where}.captions")
    c.balance = _section(d.get("balance"), BALANCE_KEYS, f"{where}.balance")
    # resolved thresholds (defaults filled in), so the config hash changes whenever a default does
    c.curation = CurationThresholds.from_dict(d.get("curation") or {}, f"{where}.curation").to_dict()
    return c


def load_config(path: Optional[str | Path] = None) -> CorpusConfig:
    """Read and validate a YAML corpus config (None = the default corpus config)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"corpus config {path} does not exist")
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    if isinstance(d, dict) and isinstance(d.get("scenes"), list):  # scene files: relative to the YAML
        d["scenes"] = [{**s, "file": str((path.parent / s["file"]).resolve())}
                       if isinstance(s, dict) and isinstance(s.get("file"), str) and s["file"] else s
                       for s in d["scenes"]]
    return config_from_dict(d, where=f"config ({path.name})")


def _derive_seed(master: int, *parts) -> int:
    h = hashlib.sha256(":".join([str(master), *map(str, parts)]).encode()).hexdigest()
    return int(h[:8], 16)


def resolve_scenes(c: CorpusConfig) -> list[tuple[str, int, str, str, Optional[str]]]:
    """[(family, seed, scene_id, split, scene_file or None)] in config order."""
    out = []
    for i, s in enumerate(c.scenes):
        if "file" in s:
            try:
                scene = load_scene(s["file"])
            except (FileNotFoundError, ValueError) as e:
                raise ValueError(f"config.scenes[{i}].file: {e}") from None
            out.append((scene.family, scene.seed, scene.scene_id, scene_split(scene.scene_id), str(Path(s["file"]).resolve())))
            continue
        fam = s["family"]
        if "seeds" in s:
            seeds = [int(v) for v in s["seeds"]]
        else:
            seeds = []
            for sp in SPLITS:
                n = int(s.get(sp, 0))
                if n:
                    seeds += seeds_for_split(lambda k: scene_id_for(fam, k), sp, n, start=int(s.get("seed_start", 0)))
            seeds = sorted(seeds)
        for seed in seeds:
            sid = scene_id_for(fam, seed)
            out.append((fam, seed, sid, scene_split(sid), None))
    seen = set()
    for fam, seed, sid, *_ in out:
        if sid in seen:
            raise ValueError(f"config.scenes: scene {sid} is listed twice")
        seen.add(sid)
    return out


def check_names(c: CorpusConfig) -> None:
    """Check families and generators against the scene library and trajectory generators."""
    fams = list(FAMILIES)
    for i, s in enumerate(c.scenes):
        if "family" in s and s["family"] not in fams:
            raise ValueError(f"config.scenes[{i}].family: unknown scene family {s['family']!r}; known: {fams}")
    gens = list(GENERATORS)
    for i, e in enumerate(c.episodes):
        if e["generator"] not in gens:
            raise ValueError(f"config.episodes[{i}].generator: unknown generator {e['generator']!r}; known: {gens}")


def plan_episodes(c: CorpusConfig, check: bool = True) -> list[EpisodeSpec]:
    """Every (scene, trajectory) of the config, in a deterministic order.

    episode_id = '<scene_id>_<generator>_<k:02d>' (k counts that generator's episodes in the
    scene); episode seed = first 32 bits of sha256('<master seed>:<scene_id>:<generator>:<k>').
    """
    if check:
        check_names(c)
    specs = []
    for fam, seed, sid, split, sfile in resolve_scenes(c):
        counters: dict[str, int] = {}
        for e in c.episodes:
            for _ in range(e["count"]):
                k = counters.get(e["generator"], 0)
                counters[e["generator"]] = k + 1
                eid = f"{sid}_{e['generator']}_{k:02d}"
                specs.append(EpisodeSpec(episode_id=eid, family=fam, scene_seed=seed, scene_id=sid, split=split,
                                         generator=e["generator"], seed=_derive_seed(c.seed, sid, e["generator"], k),
                                         duration_s=e["duration_s"], params=dict(e["params"]), scene_file=sfile))
    return specs
