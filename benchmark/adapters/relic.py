"""``relic`` / ``relic-nomem``: the bundled RELIC model (relic_model) behind
:class:`benchmark.world_model.WorldModel`, with and without its long-horizon memory.

``RelicWorldModel(checkpoint=None, memory=True, device="cpu")`` loads a checkpoint directory
(:mod:`relic_model.inference.checkpoint`; None = the bundled ``relic_model/checkpoints/relic_tiny``)
and streams with the full two-branch memory (``memory=True``, name "relic") or with the cache
limited to the rolling window (``memory=False``, name "relic-nomem", the ablation).
``chunk_size`` = video frames per generation block (4 x frames_per_block).

``memory_options`` (beyond the paper) overrides the checkpoint's inference-only memory read-budget
fields (``read_budget``, ``select``, ``select_angle_deg``, ``select_distance``,
``select_keep_first``, ``read_horizon``); :func:`parse_memory_options` parses the benchmark spec form
``budget=12+select=pose`` (``relic@budget=12+select=pose`` in ``relic bench run --models``).

``make_relic(checkpoint, memory, options)`` builds the model from the parts of a ``--models`` spec
(:func:`benchmark.adapters.make_model`, which imports this module only when a RELIC spec is asked
for, so the other models work without relic_model).
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.world_model import WorldModel, as_actions
from relic_model.inference.checkpoint import load_checkpoint
from relic_model.inference.streaming import StreamingGenerator


_OPTION_KEYS = {"budget": "read_budget", "read_budget": "read_budget", "select": "select",
                "angle": "select_angle_deg", "select_angle_deg": "select_angle_deg",
                "distance": "select_distance", "select_distance": "select_distance",
                "keep_first": "select_keep_first", "select_keep_first": "select_keep_first",
                "horizon": "read_horizon", "read_horizon": "read_horizon"}


def parse_memory_options(text: str | None) -> dict:
    """``"budget=12+select=pose"`` -> ``{"read_budget": 12, "select": "pose"}``. Keys: budget
    (int or none/all), select (recent|pose), angle (deg), distance (label units), keep_first (0/1),
    horizon (int latent frames or none: ``memory.read_horizon``).
    Items are separated by ``+`` (commas separate models in ``--models``)."""
    out: dict = {}
    for item in (text or "").split("+"):
        item = item.strip()
        if not item:
            continue
        k, eq, v = item.partition("=")
        if not eq or k.strip() not in _OPTION_KEYS:
            raise ValueError(f"bad relic memory option {item!r}; expected KEY=VALUE with KEY in "
                             f"{sorted(set(_OPTION_KEYS))}, joined by '+' (e.g. relic@budget=12+select=pose)")
        key, v = _OPTION_KEYS[k.strip()], v.strip()
        if key in ("read_budget", "read_horizon"):
            out[key] = None if v.lower() in ("none", "null", "all") else int(v)
        elif key == "select":
            out[key] = v
        elif key == "select_keep_first":
            out[key] = v.lower() in ("1", "true", "yes", "on")
        else:
            out[key] = float(v)
    return out


class RelicWorldModel(WorldModel):
    def __init__(self, checkpoint=None, memory: bool = True, device: str = "cpu", seed: int | None = None,
                 num_threads: int | None = None, memory_options: dict | None = None):
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.cfg, self.dit, self.ae, self.text = load_checkpoint(checkpoint, device)
        self.memory_options = dict(memory_options or {})
        if self.memory_options:
            for k, v in self.memory_options.items():
                if k not in set(_OPTION_KEYS.values()):
                    raise ValueError(f"unknown memory option {k!r}")
                setattr(self.cfg.memory, k, v)
            self.cfg.validate()
        self.gen = StreamingGenerator(self.dit, self.ae, self.text, self.cfg, memory=memory, device=device)
        self.name = "relic" if memory else "relic-nomem"
        self.chunk_size = self.gen.frames_per_block
        self.memory = bool(memory)
        self.seed = seed

    def reset(self, first_frame: np.ndarray, prompt: str, K: np.ndarray) -> None:
        """Tasks at another resolution than the checkpoint's are served by resizing: the first frame
        (and K) down/up to the model's size, generated frames back to the task's size (area /
        bilinear interpolation). The model never sees more detail than it was trained at."""
        H, W = first_frame.shape[:2]
        mw, mh = int(self.cfg.data.width), int(self.cfg.data.height)
        self._out_size = None if (W, H) == (mw, mh) else (W, H)
        if self._out_size is not None:
            import cv2

            first_frame = cv2.resize(first_frame, (mw, mh), interpolation=cv2.INTER_AREA)
            K = np.diag([mw / W, mh / H, 1.0]) @ np.asarray(K, dtype=np.float64)
        self.gen.reset(first_frame, prompt, K, seed=self.seed)

    def step(self, actions: np.ndarray, gamma: float) -> np.ndarray:
        frames = self.gen.step(as_actions(actions), gamma)
        if getattr(self, "_out_size", None) is None:
            return frames
        import cv2

        return np.stack([cv2.resize(f, self._out_size, interpolation=cv2.INTER_LINEAR) for f in frames])

    def describe(self) -> dict:
        d = super().describe()
        d.update({"checkpoint": self.checkpoint or "bundled", "memory": self.memory, "config": self.cfg.name,
                  "resolution": [self.cfg.data.width, self.cfg.data.height],
                  "window": self.cfg.memory.window, "schedule": list(self.cfg.memory.schedule),
                  "read_budget": self.cfg.memory.read_budget, "select": self.cfg.memory.select,
                  "read_horizon": self.cfg.memory.read_horizon})
        return d


def make_relic(checkpoint: str | None = None, memory: bool = True, options: str | None = None) -> RelicWorldModel:
    """``options``: the part after ``@`` in ``relic@budget=12+select=pose`` (memory read budget,
    see :func:`parse_memory_options`); the model is then named by its spec."""
    try:
        model = RelicWorldModel(checkpoint=checkpoint, memory=memory, memory_options=parse_memory_options(options))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e} (or name one with --models relic:PATH)") from e
    model.name = "relic" if memory else "relic-nomem"
    if options:
        model.name += "@" + options
    return model


__all__ = ["RelicWorldModel", "make_relic", "parse_memory_options"]
