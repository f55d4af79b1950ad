"""Training hyper-parameters of every stage: the ``train:`` section of a RelicConfig YAML.

Every field has a default sized for the tiny config on a 2-core CPU (a few minutes per stage);
the YAML overrides any subset, e.g.::

    train:
      seed: 0
      teacher: {batch: 8, curriculum: [{latent_frames: 6, steps: 2000}, {latent_frames: 21, steps: 500}]}
      distill: {curriculum: [{num_blocks: 20, steps: 250}, {num_blocks: 40, steps: 150}]}

Unknown keys raise ValueError. ``batch`` is the GLOBAL batch (split over torchrun ranks).
Curricula: lists of phases run in order; ``--steps N`` rescales the phase lengths to sum to N.

Memory/speed switches (top level of ``train:``): ``precision`` ("fp32" | "bf16": autocast compute,
fp32 master weights and optimizer state; FSDP2 gathers bf16 and reduces fp32),
``activation_checkpointing`` (recompute each DiT block in backward), ``dist`` (ddp | fsdp | none),
``context_parallel`` (ranks sharing one sample's tokens; ``context_parallel.py``; default 1),
``teacher_dtype`` ("fp32" | "bf16") and ``teacher_shard`` (bool): how stages 3-4 hold the frozen
teacher (bf16 parameters under bf16 autocast; FSDP2-sharded over all ranks; ``frozen_teacher.py``).
The attention implementation is a model setting (``dit.attention``).

GPU-scale configs must be explicit: the defaults below are sized for the tiny CPU model, so for a
DiT of more than ``EXPLICIT_ABOVE_PARAMS`` parameters (counted from the config's real shapes), or
when ``train.require_explicit: true``, every key in ``REQUIRED_EXPLICIT`` must be given, and an
empty or partial ``train:`` section raises ValueError listing what is missing.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class Common:
    log_every: int = 10
    ckpt_every: int = 100
    sample_every: int = 200
    grad_clip: float = 1.0
    warmup: int = 20
    spike_skip: float = 0.0          # skip an update whose pre-clip gradient norm is non-finite or above this
                                     # x the median of the last 100 (after 20); 0: off


@dataclass
class AutoencoderSettings(Common):
    steps: int = 600
    batch: int = 2
    clip_latents: int = 2            # latent frames per clip (T = 1 + tf (n - 1) video frames)
    lr: float = 1e-3
    mse_weight: float = 1.0
    l1_weight: float = 1.0
    fast_weight: float = 1.0         # fast (streaming) decoder, trained on detached latents
    latent_reg: float = 1e-4         # small L2 on raw latents (keeps their scale bounded)
    stats_clips: int = 32            # clips used to set the latent normalisation statistics
    decay_from: int = -1             # from this step on, cosine decay of lr_drop x lr to lr_min at ``steps``; -1: constant
    lr_drop: float = 1.0
    lr_min: float = 0.0


@dataclass
class TeacherSettings(Common):
    # horizon curriculum: short -> long clips (latent frames incl. the first-image latent);
    # optional per-phase rope_frame_scale (< 1 interpolates longer clips into the trained range),
    # lr (default: lr below; e.g. a lower-lr final phase) and pause_prob (default: pause_prob below)
    curriculum: list = field(default_factory=lambda: [{"latent_frames": 4, "steps": 400},
                                                      {"latent_frames": 7, "steps": 150},
                                                      {"latent_frames": 10, "steps": 150}])
    batch: int = 4
    lr: float = 5e-4
    weight_decay: float = 0.01
    sigma_shift: float = 2.0         # training-noise shift (logit-normal then shifted)
    text_dropout: float = 0.1        # prompts replaced by "" (for classifier-free guidance)
    time_reverse_prob: float = 0.3   # paper's time-reverse augmentation
    pause_prob: float = 0.0          # clips whose camera stops and holds (datagen.augment.pause); per phase too
    pool_clips: int = 192            # encoded clips cached per clip length


@dataclass
class StudentInitSettings(Common):
    steps: int = 400
    batch: int = 4
    lr: float = 2e-4
    num_blocks: int = 6              # student blocks per clip (each dit.frames_per_block latent frames)
    num_noisy_blocks: int = 2        # hybrid forcing: last K blocks noised, the rest clean context
    random_prefix: bool = False      # clean blocks before the noisy ones drawn in [0, B-K] per step (else B-K)
    trajectories: int = 48           # teacher ODE trajectories precomputed (cached on disk)
    ode_steps: int = 8               # Euler steps of the teacher ODE
    guidance: float = 1.0            # CFG scale of the teacher while sampling trajectories
    pause_prob: float = 0.0          # paused clips in the trajectory pool (datagen.augment.pause)
    sample_every: int = 200


@dataclass
class DistillSettings(Common):
    # rollout curriculum (paper: 5 s / 10 s / 20 s); blocks of dit.frames_per_block latent frames
    curriculum: list = field(default_factory=lambda: [{"num_blocks": 4, "steps": 90},
                                                      {"num_blocks": 8, "steps": 60},
                                                      {"num_blocks": 16, "steps": 30}])
    batch: int = 2
    lr_gen: float = 5e-5
    lr_fake: float = 1e-4
    gen_update_every: int = 2        # critic updates per generator update (Self-Forcing: 5)
    guidance: float = 2.0            # CFG scale of the real score (teacher)
    sigma_min: float = 0.02
    sigma_max: float = 0.98
    same_exit_step: bool = True      # one random exit step for all blocks of a rollout
    pause_prob: float = 0.0          # paused clips in the rollout pools (datagen.augment.pause)
    # weight of a regression of the rollout (latent frames >= 1) to the clip's true latents, added to
    # the DMD gradient of each generator update (0 = pure DMD, the paper); per phase too
    rollout_regression: float = 0.0
    # phases may also set context_sigma (the cache's context noise, default sampling.context_sigma)
    # and context_scope ("all" | "window", default sampling.context_scope), lr_gen and lr_fake
    sample_every: int = 60
    ckpt_every: int = 30


@dataclass
class TrainSettings:
    seed: int = 0
    dist: str = "ddp"                # ddp | fsdp | none (used under torchrun)
    precision: str = "fp32"          # fp32 | bf16 (autocast; fp32 master weights)
    activation_checkpointing: bool = False
    context_parallel: int = 1        # context-parallel degree (relic_model/context_parallel.py)
    teacher_dtype: str = "fp32"      # frozen teacher of stages 3-4: fp32 | bf16 (train/frozen_teacher.py)
    teacher_shard: bool = False      # frozen teacher FSDP2-sharded over the ranks (torchrun only)
    require_explicit: bool = False   # force the explicit-schedule check on a small model
    autoencoder: AutoencoderSettings = field(default_factory=AutoencoderSettings)
    teacher: TeacherSettings = field(default_factory=TeacherSettings)
    student_init: StudentInitSettings = field(default_factory=StudentInitSettings)
    distill: DistillSettings = field(default_factory=DistillSettings)


_STAGES = {"autoencoder": AutoencoderSettings, "teacher": TeacherSettings,
           "student_init": StudentInitSettings, "distill": DistillSettings}

#: the keys a distillation phase may set (stage_distill.py); anything else is a typo that would do nothing
DISTILL_PHASE_KEYS = frozenset({"num_blocks", "steps", "rollout_regression", "context_sigma", "context_scope", "lr_gen", "lr_fake"})


def check_distill_phase(ph: dict) -> None:
    """Refuse a distillation phase with unknown keys, without ``num_blocks`` / ``steps``, or with a
    learning rate that is not a positive number."""
    if not isinstance(ph, dict):
        raise ValueError(f"distill phase {ph!r}: must be a mapping like {{num_blocks: 8, steps: 300}}")
    bad = sorted(set(ph) - DISTILL_PHASE_KEYS)
    if bad:
        raise ValueError(f"distill phase {ph}: unknown key(s) {bad}; known: {sorted(DISTILL_PHASE_KEYS)}")
    for k in ("num_blocks", "steps"):
        if k not in ph:
            raise ValueError(f"distill phase {ph}: missing {k!r}")
    for k in ("lr_gen", "lr_fake"):
        if k in ph and not float(ph[k]) > 0:
            raise ValueError(f"distill phase {ph}: {k} must be > 0, got {ph[k]!r}")


def _fill(cls, d: dict, where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(d) - names)
    if bad:
        raise ValueError(f"unknown key(s) {bad} in config train.{where}; known: {sorted(names)}")
    return cls(**d)


#: DiTs above this many parameters get no silent defaults (see module docstring)
EXPLICIT_ABOVE_PARAMS = 200_000_000

#: keys a GPU-scale ``train:`` section must set (top level, then per stage)
REQUIRED_EXPLICIT: dict[str, tuple[str, ...]] = {
    "": ("seed", "dist", "precision", "activation_checkpointing"),
    "autoencoder": ("steps", "batch", "lr", "clip_latents"),
    "teacher": ("curriculum", "batch", "lr"),
    "student_init": ("steps", "batch", "lr", "num_blocks", "num_noisy_blocks", "trajectories", "ode_steps"),
    "distill": ("curriculum", "batch", "lr_gen", "lr_fake", "gen_update_every"),
}


def missing_explicit_keys(train: dict) -> list[str]:
    """Dotted names of :data:`REQUIRED_EXPLICIT` keys absent from a ``train:`` mapping."""
    miss = []
    for stage, keys in REQUIRED_EXPLICIT.items():
        sec = train if not stage else (train.get(stage) or {})
        miss += [f"{stage + '.' if stage else ''}{k}" for k in keys if k not in sec]
    return miss


def train_settings(cfg) -> TrainSettings:
    """TrainSettings from ``cfg.train`` (a dict), with defaults for everything absent -- except for
    GPU-scale models (see module docstring), where a missing schedule key raises ValueError."""
    d = dict(cfg.train or {})
    explicit = bool(d.get("require_explicit", False))
    if not explicit:
        from relic_model.nn.parameters import dit_parameters   # deferred: it imports torch

        n = dit_parameters(cfg)
        explicit = n > EXPLICIT_ABOVE_PARAMS
    else:
        n = None
    if explicit:
        miss = missing_explicit_keys(d)
        if miss:
            why = (f"its DiT has {n / 1e6:.0f}M parameters (> {EXPLICIT_ABOVE_PARAMS / 1e6:.0f}M)" if n is not None
                   else "train.require_explicit is set")
            raise ValueError(f"config {getattr(cfg, 'name', '?')!r}: {why}, so its train section must set every "
                             f"schedule key explicitly (the defaults are sized for the tiny CPU model); missing: "
                             f"{', '.join(miss)}")
    kw = {}
    for k in ("seed", "dist", "precision", "activation_checkpointing", "context_parallel", "teacher_dtype",
              "teacher_shard", "require_explicit"):
        if k in d:
            kw[k] = d.pop(k)
    if kw.get("precision", "fp32") not in ("fp32", "bf16"):
        raise ValueError(f"train.precision must be fp32 or bf16, got {kw['precision']!r}")
    if kw.get("dist", "ddp") not in ("ddp", "fsdp", "none"):
        raise ValueError(f"train.dist must be ddp, fsdp or none, got {kw['dist']!r}")
    if not isinstance(kw.get("context_parallel", 1), int) or kw.get("context_parallel", 1) < 1:
        raise ValueError(f"train.context_parallel must be an integer >= 1, got {kw['context_parallel']!r}")
    if kw.get("teacher_dtype", "fp32") not in ("fp32", "bf16"):
        raise ValueError(f"train.teacher_dtype must be fp32 or bf16, got {kw['teacher_dtype']!r}")
    if not isinstance(kw.get("teacher_shard", False), bool):
        raise ValueError(f"train.teacher_shard must be true or false, got {kw['teacher_shard']!r}")
    for name, cls in _STAGES.items():
        kw[name] = _fill(cls, dict(d.pop(name, None) or {}), name)
    for ph in kw["distill"].curriculum:
        check_distill_phase(ph)
    if d:
        raise ValueError(f"unknown key(s) {sorted(d)} in config section train; known: seed, dist, precision, "
                         f"activation_checkpointing, context_parallel, teacher_dtype, teacher_shard, require_explicit, "
                         f"{', '.join(_STAGES)}")
    return TrainSettings(**kw)


def curriculum_total(phases: list) -> int:
    return sum(int(p["steps"]) for p in phases)


def rescale_curriculum(phases: list, total: int) -> list:
    """Phase lengths rescaled proportionally to sum to ``total`` (every phase >= 1 step)."""
    old = curriculum_total(phases)
    out = [dict(p) for p in phases]
    if total == old:
        return out
    acc, done = 0, 0
    for i, p in enumerate(out):
        acc += int(p["steps"])
        target = round(total * acc / old) if i < len(out) - 1 else total
        p["steps"] = max(1, target - done)
        done += p["steps"]
    return out


def phase_at(phases: list, step: int) -> tuple[int, dict]:
    """(index, phase) active at ``step`` (0-based completed-steps counter)."""
    acc = 0
    for i, p in enumerate(phases):
        acc += int(p["steps"])
        if step < acc:
            return i, p
    return len(phases) - 1, phases[-1]


def phase_lr(phases: list, step: int, default: float) -> float:
    """Learning rate at ``step``: the active phase's ``lr`` key, else ``default``."""
    return float(phase_at(phases, step)[1].get("lr", default))
