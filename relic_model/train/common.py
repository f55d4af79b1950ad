"""Shared plumbing of the four stages: run directory layout, seeding, model construction and
loading the previous stages' results.

Run layout (``--out RUN``)::

    RUN/autoencoder/   RUN/teacher/   RUN/student_init/   RUN/distill/
        losses.csv  samples/  checkpoints/step_XXXXXXXX/  final/{model.safetensors,config.yaml,state.json}
    RUN/cache/         encoded clip pools and teacher ODE trajectories (content-hashed names)
    RUN/bundle/        the final model (``relic train all``)

Weights inside ``model.safetensors`` are prefixed by module: ``autoencoder.``, ``teacher.``,
``text.``, ``student.``, ``fake.`` (the DMD critic).

Seeding: every random draw of step ``s`` for global sample ``i`` comes from
``numpy.random.SeedSequence([seed, stage_id, s, i])`` so results do not depend on the number of
processes (DDP) or on resuming.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from datagen import Corpus
from relic_model.config import load_config
from relic_model.data.clips import CorpusClips
from relic_model.distributed import DistInfo, clip_grad_norm, with_context_parallel
from relic_model.nn.autoencoder import VideoAutoencoder
from relic_model.nn.dit import RelicDiT
from relic_model.nn.text import TextEncoder
from relic_model.train.checkpoint import load_modules
from relic_model.train.settings import TrainSettings, train_settings

STAGES = ("autoencoder", "teacher", "student_init", "distill")
STAGE_ID = {s: i + 1 for i, s in enumerate(STAGES)}


def sample_seed(seed: int, stage: str, step: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed), STAGE_ID.get(stage, 99), int(step), int(index)]).generate_state(1)[0])


def torch_gen(seed: int, stage: str, step: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(sample_seed(seed, stage, step, index))


def np_rng(seed: int, stage: str, step: int, index: int) -> np.random.Generator:
    return np.random.default_rng(sample_seed(seed, stage, step, index))


def per_sample_randn(shape_one: tuple, seed: int, stage: str, step: int, indices, salt: int = 0) -> torch.Tensor:
    """Stack of standard normals, one independently seeded draw per global sample index."""
    return torch.stack([torch.randn(shape_one, generator=torch_gen(seed, stage, step * 16 + salt, int(i)))
                        for i in indices])


@dataclass
class RunContext:
    cfg: object                       # RelicConfig
    corpus: str | Path | None
    out: Path
    info: DistInfo = field(default_factory=DistInfo)
    progress: bool = True
    settings: TrainSettings | None = None

    def __post_init__(self):
        self.out = Path(self.out)
        if self.settings is None:
            self.settings = train_settings(self.cfg)
        if self.settings.context_parallel > 1 and self.info.cp == 1:   # CP groups (collective)
            self.info = with_context_parallel(self.info, self.settings.context_parallel)

    @property
    def seed(self) -> int:
        return int(self.settings.seed)

    def stage_dir(self, stage: str) -> Path:
        return self.out / stage

    @property
    def cache_dir(self) -> Path:
        return self.out / "cache"

    def final_dir(self, stage: str) -> Path:
        p = self.out / stage / "final"
        if not (p / "model.safetensors").is_file():
            cmd = stage.replace("_", "-")
            raise FileNotFoundError(f"stage '{stage}' has no final weights in {p}; run `relic train {cmd} "
                                    f"--out {self.out} ...` first")
        return p

    def clips(self, time_reverse_prob: float = 0.0, pause_prob: float = 0.0):
        if self.corpus is None:
            raise ValueError("this stage needs --corpus DIR")
        d = self.cfg.data
        return CorpusClips(self.corpus, "train", d.height, d.width, d.fps, time_reverse_prob, pause_prob)

    def corpus_hash(self) -> str:
        return str(Corpus.open(self.corpus).header.get("config_hash", "")) if self.corpus else ""


def build_autoencoder(cfg) -> nn.Module:
    return VideoAutoencoder(cfg)


def build_dit(cfg) -> nn.Module:
    return RelicDiT(cfg)


def build_text(cfg) -> nn.Module:
    return TextEncoder(cfg.text)


def configure_dit(m: nn.Module, settings: TrainSettings) -> nn.Module:
    """Apply the run's precision (bf16 autocast, fp32 weights) and activation checkpointing."""
    m.set_precision(settings.precision)
    m.set_activation_checkpointing(settings.activation_checkpointing)
    return m


def frozen(m: nn.Module) -> nn.Module:
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def load_stage_module(ctx: RunContext, stage: str, prefix: str, module: nn.Module) -> nn.Module:
    load_modules(ctx.final_dir(stage) / "model.safetensors", {prefix: module})
    return module


def stage_config(ctx: RunContext, stage: str):
    """The RelicConfig saved with a stage's final weights (carries e.g. the RoPE frame scale)."""
    return load_config(ctx.final_dir(stage) / "config.yaml")


def dit_with_cfg(cfg, rope_frame_scale: float | None = None) -> nn.Module:
    c = copy.deepcopy(cfg)
    if rope_frame_scale is not None:
        c.dit.rope_frame_scale = float(rope_frame_scale)
    return build_dit(c)


def warmup_lr(opt: torch.optim.Optimizer, base_lr: float, step: int, warmup: int) -> None:
    lr = base_lr * min(1.0, (step + 1) / max(1, warmup))
    for g in opt.param_groups:
        g["lr"] = lr


def cosine_lr(opt: torch.optim.Optimizer, base_lr: float, step: int, warmup: int, decay_from: int,
              total: int, lr_min: float, drop: float = 1.0) -> None:
    """``warmup_lr``, then from step ``decay_from`` (>= 0) a cosine from ``drop`` x ``base_lr`` to ``lr_min``
    at ``total``."""
    warmup_lr(opt, base_lr, step, warmup)
    if 0 <= decay_from <= step:
        f = min(1.0, (step - decay_from) / max(1, total - decay_from))
        lr = lr_min + 0.5 * (drop * base_lr - lr_min) * (1.0 + math.cos(math.pi * f))
        for g in opt.param_groups:
            g["lr"] = lr


class SpikeGuard:
    """Skips an optimizer update whose pre-clip gradient norm is non-finite or above ``factor`` x the median
    of the last ``window`` norms (once ``min_seen`` were seen): one pathological batch, clipped but
    normalised by Adam, had wrecked a long autoencoder run (reports in relic_model/README.md)."""

    def __init__(self, factor: float, window: int = 100, min_seen: int = 20, max_in_row: int = 20):
        self.factor, self.window, self.min_seen, self.max_in_row = float(factor), window, min_seen, max_in_row
        self.norms: list[float] = []
        self.skipped = 0
        self.in_row = 0

    def allow(self, gn: float) -> bool:
        if self.factor <= 0:
            return True
        if math.isfinite(gn) and not (len(self.norms) >= self.min_seen and gn > self.factor * float(np.median(self.norms))):
            self.norms = (self.norms + [gn])[-self.window:]
            self.in_row = 0
            return True
        self.skipped += 1
        self.in_row += 1
        if self.in_row > self.max_in_row:
            # not one bad batch: the weights themselves have gone wrong, and skipping would spin forever
            raise RuntimeError(f"training diverged: {self.in_row} updates in a row with a gradient norm over "
                               f"{self.factor:g}x the recent median ({gn:.3g}); resume from an earlier checkpoint "
                               f"with a lower learning rate")
        return False


def clip_and_step(opt: torch.optim.Optimizer, params, grad_clip: float, guard: "SpikeGuard | None" = None) -> float:
    gn = clip_grad_norm(list(params), grad_clip) if grad_clip > 0 else torch.tensor(0.0)
    if guard is None or guard.allow(float(gn)):
        opt.step()
    opt.zero_grad(set_to_none=True)
    return float(gn)
