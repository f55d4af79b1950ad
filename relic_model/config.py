"""Typed configuration for the RELIC reference model, loaded from / saved to YAML.

One :class:`RelicConfig` describes a whole model and its training run. Sections:

- ``data``:        video resolution (pixels, both sides divisible by the autoencoder's spatial
                   factor) and frame rate (frames/s).
- ``autoencoder``: causal video autoencoder (8x spatial / 4x temporal by default).
- ``dit``:         the flow-matching diffusion transformer (width, depth, heads, patching, RoPE).
- ``memory``:      the two-branch KV cache (rolling window ``window`` latent frames, cyclic
                   spatial-downsampling schedule ``schedule`` for older frames).
- ``text``:        the offline hashed-word text encoder.
- ``sampling``:    the student's few-step sampler (sigma schedule, seed, context noise).
- ``train``:       free-form mapping owned by the training stages (``relic_model.train``); kept
                   as a plain dict here so training code can evolve without touching this file.

YAML files contain any subset of the fields; missing fields take the dataclass defaults, unknown
fields raise ``ValueError`` naming them (typos never pass silently).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from datagen.atomic import atomic_write

#: The paper's cyclic spatial-downsampling schedule over latent-frame index i: s_i = S[i mod 18].
PAPER_SCHEDULE: tuple[int, ...] = (1, 4, 2, 4, 4, 4, 2, 4, 4, 2, 4, 4, 4, 2, 4, 4, 2, 4)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class DataConfig:
    """Video geometry. ``height``/``width`` in pixels, ``fps`` frames per second."""
    height: int = 64
    width: int = 112
    fps: float = 16.0


@dataclass
class AutoencoderConfig:
    """Causal video autoencoder.

    ``spatial_factor`` (power of two) pixels per latent cell per side; ``temporal_factor`` video
    frames per latent frame after the first (the first frame is encoded alone, as in Wan's causal
    VAE); ``latent_channels`` C; ``channels`` widths of the encoder/decoder stages (one stage per
    factor of two, coarse last); ``fast_channels`` widths of the small streaming decoder.
    ``streaming_decoder`` picks which decoder ``decode_chunk`` uses: "fast" or "full".
    ``first_frame`` how latent 0 (frame 0 alone) is encoded: "head" (its own first-frame head,
    the original layout) or "replicate" (frame 0 repeated ``temporal_factor`` times through the
    group head, so latent 0 lives in the same latent space as every later latent and a still
    clip's latents all equal latent 0). ``decoder_res_blocks`` residual blocks per stage of the
    (full) decoder; more are added to a trained autoencoder by ``relic train finetune-decoder``.
    """
    in_channels: int = 3
    latent_channels: int = 8
    spatial_factor: int = 8
    temporal_factor: int = 4
    channels: list[int] = field(default_factory=lambda: [32, 48, 64])
    fast_channels: list[int] = field(default_factory=lambda: [16, 24, 32])
    streaming_decoder: str = "full"
    first_frame: str = "head"
    decoder_res_blocks: int = 1


@dataclass
class DiTConfig:
    """Diffusion transformer over latent frames.

    ``dim`` model width, ``depth`` blocks, ``heads`` attention heads (head dim = dim / heads, even
    and >= 6 for 3-axis RoPE), ``patch_size`` latent cells per token per side, ``frames_per_block``
    latent frames generated together by the block-causal student, ``action_dim``/``pose_dim``
    control widths (13 action channels; 12 = flattened 3x4 [R|t]), ``rope_theta`` RoPE base,
    ``rope_frame_scale`` multiplies frame positions (< 1 interpolates: horizon curriculum),
    ``text_dim`` must equal ``text.dim``; ``pose_translation_scale`` multiplies the translation
    column of the absolute poses (in units of gamma, i.e. label units) before the pose encoder.
    ``attention`` picks how block-causal self-attention is computed (all three give the same
    result up to float rounding): "chunked" (default; one mask-free scaled-dot-product call per
    query block over its visible key prefix: no N x N mask, block-causal FLOPs), "flex"
    (``torch.nn.attention.flex_attention`` with a BlockMask built from block boundaries; fused
    only under ``torch.compile``, i.e. for GPUs; eager flex materialises the score matrix) or
    "dense" (an explicit N x N boolean mask: the reference implementation, O(N^2) memory).
    ``first_frame_concat``: the clean first-image latent (latent 0) is concatenated channel-wise to
    every latent frame's input (as Wan's image-to-video models do), so every token has a direct,
    position-aligned view of the first frame instead of reaching it only through attention; the
    extra input weights start at zero (a model without it is the same function at init).
    """
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    patch_size: int = 1
    frames_per_block: int = 1
    action_dim: int = 13
    pose_dim: int = 12
    rope_theta: float = 10000.0
    rope_frame_scale: float = 1.0
    qk_norm: bool = True
    text_dim: int = 64
    pose_translation_scale: float = 0.05
    attention: str = "chunked"
    first_frame_concat: bool = False


#: block-causal attention implementations (see DiTConfig)
ATTENTION_IMPLS = ("chunked", "flex", "dense")


@dataclass
class MemoryConfig:
    """Two-branch KV cache. ``window`` latent frames stay uncompressed; older frames are kept
    (when ``enabled``) spatially avg-pooled by ``schedule[i % len(schedule)]`` (i = latent frame
    index). ``enabled=False`` keeps only the rolling window (the no-memory ablation)."""
    window: int = 4
    schedule: list[int] = field(default_factory=lambda: list(PAPER_SCHEDULE))
    enabled: bool = True
    # --- beyond the paper: camera-aware memory read budget (inference only; see
    # relic_model.nn.memory.select_memory_frames). None = attend every compressed memory frame
    # (the paper's behaviour). An int B caps the compressed-memory latent frames attended per
    # generation block at B (masked keys; the cache contents never change; window always attended).
    read_budget: int | None = None
    #: which B frames: "recent" (the B newest memory frames) or "pose" (the B whose camera pose is
    #: closest to the block being generated: angle_deg / select_angle_deg + dist / select_distance).
    select: str = "recent"
    select_angle_deg: float = 30.0
    #: translation unit of the pose score, in pose label units (1 = one frame of unit-speed motion)
    select_distance: float = 16.0
    #: always spend one budget slot on latent frame 0 (the clean first image) when it is in memory
    select_keep_first: bool = False
    #: max frame-axis RoPE distance (latent frames) at which compressed memory is read; older memory
    #: is linearly position-interpolated into (window, read_horizon] (KVCache.set_read_horizon).
    #: None = true distances (the paper). Must exceed ``window``.
    read_horizon: int | None = None
    #: how memory distances beyond the horizon are mapped: "linear" (all memory frames interpolated
    #: into (window, read_horizon], order kept) or "cap" (true distances up to read_horizon, every
    #: older frame read at read_horizon: capped relative time)
    read_horizon_mode: str = "linear"


@dataclass
class TextConfig:
    """Offline text encoder: words hashed (crc32) into ``buckets`` fixed seeded embeddings of width
    ``dim``, then ``layers`` small transformer layers; at most ``max_tokens`` tokens (incl. BOS)."""
    dim: int = 64
    max_tokens: int = 32
    buckets: int = 4096
    layers: int = 1
    heads: int = 4
    seed: int = 0


@dataclass
class SamplingConfig:
    """Student few-step flow sampler: ``sigmas`` descending noise levels in (0, 1] visited per
    block (the last step jumps to 0); ``seed`` seeds the noise generator.

    ``context_sigma`` (default 0: the paper's clean commit): the noise level at which the student's
    context enters its KV cache -- each generated block is committed as ``(1 - c) x0 + c eps`` at
    sigma ``c`` (streaming inference and self-forcing rollouts), and student init's clean prefix is
    noised the same way, so the student is trained to read a context as imprecise as its own outputs
    (CausVid / Self-Forcing's "context noise"). Latent frame 0, the given first image, stays clean.

    ``context_scope`` (beyond the paper): where that noise goes. ``"all"`` (default): the noised
    block is what the window holds and, once it leaves the window, what is pooled into the
    compressed memory. ``"window"``: the block is also run clean (one more forward per block) and
    that clean pass's K/V are the ones pooled into the compressed memory, so only the recent window
    is read noised (:mod:`relic_model.nn.memory`, memory-only commits)."""
    sigmas: list[float] = field(default_factory=lambda: [1.0, 0.75, 0.5, 0.25])
    seed: int = 0
    context_sigma: float = 0.0
    context_scope: str = "all"


CONTEXT_SCOPES = ("all", "window")


def check_context_scope(scope: str, what: str = "context_scope") -> str:
    """``scope`` if it is one of :data:`CONTEXT_SCOPES`; else ValueError."""
    if scope not in CONTEXT_SCOPES:
        raise ValueError(f"{what} must be one of {CONTEXT_SCOPES}, got {scope!r}")
    return scope


def check_context_sigma(c: float, sigmas, what: str = "context_sigma") -> float:
    """``c`` if it is a valid context-noise level for the sampler ``sigmas``: in [0, min(sigmas)),
    so committed context is always less noisy than any frame being denoised; else ValueError."""
    if not 0.0 <= float(c) < min(sigmas):
        raise ValueError(f"{what} must be in [0, {min(sigmas)}) (below the sampler's last noise level), got {c}")
    return float(c)


@dataclass
class RelicConfig:
    name: str = "relic"
    data: DataConfig = field(default_factory=DataConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    text: TextConfig = field(default_factory=TextConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    train: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "RelicConfig":
        """Check cross-field consistency; raises ValueError saying what to fix."""
        ae, d, m = self.autoencoder, self.dit, self.memory
        f = ae.spatial_factor
        if f < 2 or f & (f - 1):
            raise ValueError(f"autoencoder.spatial_factor must be a power of two >= 2, got {f}")
        if len(ae.channels) != f.bit_length() - 1 or len(ae.fast_channels) != len(ae.channels):
            raise ValueError(f"autoencoder.channels / fast_channels need log2(spatial_factor)="
                             f"{f.bit_length() - 1} entries, got {ae.channels} / {ae.fast_channels}")
        if self.data.height % (f * d.patch_size) or self.data.width % (f * d.patch_size):
            raise ValueError(f"data.height/width ({self.data.height}x{self.data.width}) must be divisible by "
                             f"spatial_factor*patch_size = {f * d.patch_size}")
        if ae.decoder_res_blocks < 1:
            raise ValueError(f"autoencoder.decoder_res_blocks must be >= 1, got {ae.decoder_res_blocks}")
        if ae.temporal_factor < 1:
            raise ValueError("autoencoder.temporal_factor must be >= 1")
        if ae.streaming_decoder not in ("fast", "full"):
            raise ValueError(f"autoencoder.streaming_decoder must be 'fast' or 'full', got {ae.streaming_decoder!r}")
        if ae.first_frame not in ("head", "replicate"):
            raise ValueError(f"autoencoder.first_frame must be 'head' or 'replicate', got {ae.first_frame!r}")
        if d.dim % d.heads:
            raise ValueError(f"dit.dim ({d.dim}) must be divisible by dit.heads ({d.heads})")
        if d.attention not in ATTENTION_IMPLS:
            raise ValueError(f"dit.attention must be one of {list(ATTENTION_IMPLS)}, got {d.attention!r}")
        hd = d.dim // d.heads
        if hd % 2 or hd < 6:
            raise ValueError(f"head dim dit.dim/dit.heads = {hd} must be even and >= 6 (3-axis RoPE)")
        if d.text_dim != self.text.dim:
            raise ValueError(f"dit.text_dim ({d.text_dim}) must equal text.dim ({self.text.dim})")
        if d.frames_per_block < 1 or m.window < d.frames_per_block:
            raise ValueError(f"memory.window ({m.window}) must be >= dit.frames_per_block ({d.frames_per_block}) >= 1")
        if m.read_budget is not None and (isinstance(m.read_budget, bool) or int(m.read_budget) != m.read_budget
                                          or int(m.read_budget) < 0):
            raise ValueError(f"memory.read_budget must be null or an int >= 0, got {m.read_budget!r}")
        if m.read_horizon is not None and (isinstance(m.read_horizon, bool) or int(m.read_horizon) != m.read_horizon
                                           or int(m.read_horizon) <= m.window):
            raise ValueError(f"memory.read_horizon must be null or an int > memory.window ({m.window}), "
                             f"got {m.read_horizon!r}")
        if m.read_horizon_mode not in ("linear", "cap"):
            raise ValueError(f"memory.read_horizon_mode must be 'linear' or 'cap', got {m.read_horizon_mode!r}")
        if m.select not in ("recent", "pose"):
            raise ValueError(f"memory.select must be 'recent' or 'pose', got {m.select!r}")
        if not (m.select_angle_deg > 0 and m.select_distance > 0):
            raise ValueError(f"memory.select_angle_deg ({m.select_angle_deg}) and memory.select_distance "
                             f"({m.select_distance}) must be > 0")
        if not m.schedule or any(int(s) < 1 for s in m.schedule):
            raise ValueError(f"memory.schedule must be a non-empty list of ints >= 1, got {m.schedule}")
        s = self.sampling.sigmas
        if not s or any(not (0.0 < x <= 1.0) for x in s) or any(a <= b for a, b in zip(s, s[1:])):
            raise ValueError(f"sampling.sigmas must be strictly descending in (0, 1], got {s}")
        check_context_sigma(self.sampling.context_sigma, s, "sampling.context_sigma")
        check_context_scope(self.sampling.context_scope, "sampling.context_scope")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = {"data": DataConfig, "autoencoder": AutoencoderConfig, "dit": DiTConfig, "memory": MemoryConfig,
             "text": TextConfig, "sampling": SamplingConfig}


def _build(cls, values: dict, where: str):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"config section '{where}' must be a mapping, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown field(s) in config section '{where}': {unknown}; known: {sorted(names)}")
    return cls(**values)


def config_from_dict(d: dict) -> RelicConfig:
    """Build and validate a RelicConfig from a (possibly partial) nested dict."""
    d = dict(d or {})
    top = {f.name for f in dataclasses.fields(RelicConfig)}
    unknown = sorted(set(d) - top)
    if unknown:
        raise ValueError(f"unknown config section(s): {unknown}; known: {sorted(top)}")
    kw: dict[str, Any] = {k: _build(cls, d.get(k), k) for k, cls in _SECTIONS.items()}
    if "name" in d:
        kw["name"] = str(d["name"])
    train = d.get("train") or {}
    if not isinstance(train, dict):
        raise ValueError("config section 'train' must be a mapping")
    kw["train"] = train
    return RelicConfig(**kw).validate()


def load_config(path: str | os.PathLike) -> RelicConfig:
    """Load a YAML config. ``path`` may also be a bundled config name ("tiny", "small", "gpu")."""
    p = Path(path)
    if not p.exists() and not p.suffix and (CONFIG_DIR / f"{p.name}.yaml").exists():
        p = CONFIG_DIR / f"{p.name}.yaml"
    if not p.exists():
        raise FileNotFoundError(f"config file not found: {path} (bundled: "
                                f"{sorted(q.stem for q in CONFIG_DIR.glob('*.yaml'))})")
    with open(p, "r", encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    try:
        return config_from_dict(data)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None


def save_config(cfg: RelicConfig, path: str | os.PathLike) -> None:
    """Write ``cfg`` as YAML atomically (:func:`datagen.atomic.atomic_write`)."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            yaml.safe_dump(cfg.to_dict(), fh, sort_keys=False)

    atomic_write(path, write)


__all__ = ["RelicConfig", "DataConfig", "AutoencoderConfig", "DiTConfig", "MemoryConfig", "TextConfig",
           "SamplingConfig", "PAPER_SCHEDULE", "load_config", "save_config", "config_from_dict"]
