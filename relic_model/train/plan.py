"""Training memory/compute plan: per stage, per GPU, from the config's real shapes.

``plan_stages(cfg, gpus, gpu_mem_gib) -> list[StagePlan]`` (used by ``relic train plan`` =
``python -m relic_model.cli.train_plan``). Every number is computed here from the config (no
hand-entered sizes):

- parameters: counted by building the networks on the ``meta`` device (exact, no memory;
  ``nn/parameters.py``);
- weights / gradients / AdamW state (fp32 master weights: 4 + 4 + 8 bytes per trainable
  parameter), divided by the GPU count under ``dist: fsdp`` (FSDP2 shards parameters, gradients and
  optimizer state), plus the largest block's parameters gathered unsharded twice (current +
  prefetched) under FSDP; frozen text encoder and autoencoder: 4 bytes per parameter, replicated;
- the frozen teacher of student init and distillation (``frozen_teacher.py``): DiT parameters x
  (2 bytes under ``train.teacher_dtype: bf16``, else 4) / the shard degree (the GPU count under
  ``train.teacher_shard: true``, else 1), plus, when sharded, what one forward gathers: the
  largest block twice (current + prefetched) and the root's non-block parameters, in the
  teacher's dtype;
- activations saved for backward by one DiT block, per token, from the block's operations
  (:func:`block_saved_elements_per_token`: the tensors autograd keeps for LayerNorm/RMSNorm,
  the Q/K/V/output/MLP linears, RoPE, the two attention calls with a fused (flash-style) kernel
  that keeps q, k, v, out and the log-sum-exp, and the adaLN gates): ``26 D + 2 M`` elements for
  width ``D`` and MLP width ``M``; 4 bytes each in fp32; in bf16 2 bytes each plus the fp32 copies of
  the pre-RoPE q and k (RoPE is applied in fp32). With activation checkpointing a block keeps only
  its input (``D`` elements per token) and one block's activations are alive during its
  recomputation;
- the KV cache held with autograd (hybrid forcing's clean prefix, replay's cache: K and V per
  layer for the held tokens, compressed by the memory schedule);
- context parallelism (``train.context_parallel: c``, ``context_parallel.py``): ``gpus / c``
  data-parallel groups share the global batch (batch per GPU = ``ceil(batch / (gpus / c))``); each
  rank holds the activations of ``ceil(F / c)`` of a sample's ``F`` latent frames, plus, per block
  whose activations are alive, the gathered K and V of the whole sequence that attention keeps for
  backward (``2 (T - T_local) D`` more elements than the local ``q, k, v, out`` term counts);
  KV caches are replicated on the group's ranks. Communication per GPU and step ("CP K/V GiB"): per
  block and sample an all-gather of K and V in forward, its reduce-scatter in backward, and one more
  all-gather for the recomputation under activation checkpointing, each moving
  ``(c - 1) / c x 2 T D`` elements;
- step peak = static (weights, frozen networks and teacher, optimizer state) + max(activations,
  gradients);
- FLOPs per optimisation step: 2 x (matmul parameters) per token and ``4 T_kv D`` per token and
  layer for attention (block-causal: the visible prefix), x3 for forward + backward, +1 forward
  under activation checkpointing, x the global batch.

Validated on CPU against torch's own allocation peak of real training steps
(``python -m perf.perf_memory_plan`` -> ``reports/perf_train_plan.md``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from relic_model.nn.memory import kv_token_counts
from relic_model.nn.parameters import dit_parameters, model_parameters
from relic_model.train.settings import train_settings

GIB = 1024 ** 3


def tokens_per_latent_frame(cfg) -> int:
    f = cfg.autoencoder.spatial_factor * cfg.dit.patch_size
    return (cfg.data.height // f) * (cfg.data.width // f)


def block_saved_elements_per_token(cfg) -> dict[str, float]:
    """Elements autograd saves per token in one RelicBlock forward (see module docstring)."""
    D = cfg.dit.dim
    M = int(D * cfg.dit.mlp_ratio)
    terms = {
        "self-attn: norm1 in/out, h": 3 * D,
        "self-attn: q/k RMSNorm (input, normalised)": 4 * D,
        "self-attn: q/k before RoPE": 2 * D,
        "self-attn: q, k, v, out (fused attention)": 4 * D,
        "self-attn: to_out input, gated output": 2 * D,
        "cross-attn: norm2 in/out, q RMSNorm, q, out, to_out input": 7 * D,
        "mlp: norm3 in/out, fc1 in, gated output": 4 * D,
        "mlp: GELU in, fc2 in": 2 * M,
    }
    return terms


def activation_bytes_per_token_layer(cfg, precision: str) -> float:
    D = cfg.dit.dim
    el = sum(block_saved_elements_per_token(cfg).values())
    if precision == "bf16":
        return 2.0 * el + 2.0 * (2 * D)   # + fp32 copies of pre-RoPE q, k (2 extra bytes each)
    return 4.0 * el


def dit_activation_bytes(cfg, tokens: int, precision: str, checkpointing: bool, kv_tokens: int | None = None) -> float:
    """Saved-for-backward bytes of a full DiT forward over ``tokens`` tokens (one sample) on one
    rank; ``kv_tokens``: the whole sequence when ``tokens`` is this rank's context-parallel shard
    (attention keeps the gathered K and V of all ``kv_tokens`` for backward)."""
    per = activation_bytes_per_token_layer(cfg, precision)
    depth = cfg.dit.depth
    b = 2 if precision == "bf16" else 4
    kv_extra = 2.0 * cfg.dit.dim * b * max(0, (kv_tokens or tokens) - tokens)   # per block alive
    if checkpointing:
        # block inputs kept for every layer + one block's activations alive during its recompute
        return tokens * (depth * cfg.dit.dim * b + per) + kv_extra
    return tokens * depth * per + depth * kv_extra


def cp_kv_traffic_bytes(cfg, tokens: int, precision: str, checkpointing: bool, cp: int) -> float:
    """Bytes one rank receives/sends for the K/V all-gathers (forward, recomputation) and their
    gradient reduce-scatter (backward) of one sample's training forward+backward over ``tokens``."""
    if cp <= 1:
        return 0.0
    b = 2 if precision == "bf16" else 4
    passes = 3 if checkpointing else 2
    return cfg.dit.depth * passes * (cp - 1) / cp * 2.0 * tokens * cfg.dit.dim * b


def kv_cache_bytes(cfg, held_tokens: int, precision: str) -> float:
    b = 2 if precision == "bf16" else 4
    return 2.0 * cfg.dit.depth * held_tokens * cfg.dit.dim * b


def dit_flops_per_token(cfg, params_matmul: int, kv_tokens: float) -> float:
    """Forward FLOPs per token: 2 per matmul parameter + attention 4 * T_kv * D per layer."""
    return 2.0 * params_matmul + 4.0 * kv_tokens * cfg.dit.dim * cfg.dit.depth


@dataclass
class StagePlan:
    stage: str
    phase: str
    tokens_per_sample: int
    batch_per_gpu: int
    gib: dict[str, float] = field(default_factory=dict)   # per GPU
    total_gib: float = 0.0
    step_tflops: float = 0.0
    fits: bool = True
    advice: str = ""
    context_parallel: int = 1
    tokens_per_gpu: int = 0          # this rank's share of one sample (context parallelism)
    cp_traffic_gib: float = 0.0      # K/V all-gather + reduce-scatter per GPU and step
    teacher_dtype: str = "fp32"      # frozen teacher of student init / distillation
    teacher_shard: int = 1           # its shard degree (GPUs holding 1/n of it each)


def teacher_bytes_per_gpu(P: dict, depth: int, dtype: str, shard: int) -> tuple[float, float]:
    """(held, gathered) bytes of the frozen teacher on one GPU: its parameters in ``dtype`` split
    over ``shard`` ranks, and (``shard > 1``) the unsharded parameters one forward gathers: the
    largest block twice (current + prefetched) and the root's non-block parameters."""
    b = 2 if dtype == "bf16" else 4
    held = P["dit"] * b / shard
    gathered = (2 * P["dit_block"] + (P["dit"] - depth * P["dit_block"])) * b if shard > 1 else 0.0
    return held, gathered


def _phases(settings):
    t, s, d = settings.teacher, settings.student_init, settings.distill
    out = [("teacher", f"{p['latent_frames']} latent frames x {p['steps']} steps", int(p["latent_frames"]), t.batch)
           for p in t.curriculum]
    out.append(("student_init", f"{s.num_blocks} blocks ({s.num_noisy_blocks} noisy) x {s.steps} steps", None, s.batch))
    out += [("distill", f"{p['num_blocks']} blocks x {p['steps']} steps", int(p["num_blocks"]), d.batch)
            for p in d.curriculum]
    return out


def plan_stages(cfg, gpus: int = 8, gpu_mem_gib: float = 80.0, settings=None,
                context_parallel: int | None = None, teacher_dtype: str | None = None,
                teacher_shard: bool | None = None) -> list[StagePlan]:
    """Per-GPU memory and step FLOPs of every training phase of ``cfg`` on ``gpus`` GPUs
    (``context_parallel``, ``teacher_dtype``, ``teacher_shard``: override the config's
    ``train.*`` values of the same names)."""
    st = settings or train_settings(cfg)
    over = {k: v for k, v in (("teacher_dtype", teacher_dtype), ("teacher_shard", teacher_shard)) if v is not None}
    if over.get("teacher_dtype", st.teacher_dtype) not in ("fp32", "bf16"):
        raise ValueError(f"teacher dtype must be fp32 or bf16, got {over['teacher_dtype']!r}")
    st = dataclasses.replace(st, **over)
    prec, ck, fsdp = st.precision, bool(st.activation_checkpointing), st.dist == "fsdp" and gpus > 1
    cp = int(st.context_parallel if context_parallel is None else context_parallel)
    if cp < 1 or gpus % cp:
        raise ValueError(f"context parallel degree {cp} must be >= 1 and divide the GPU count {gpus}")
    dp = gpus // cp
    loc = lambda frames: -(-frames // cp)        # latent frames per rank (padded shards)
    shard = gpus if fsdp else 1
    P = model_parameters(cfg)
    n = tokens_per_latent_frame(cfg)
    fpb = cfg.dit.frames_per_block
    gh_gw = (cfg.data.height // (cfg.autoencoder.spatial_factor * cfg.dit.patch_size),
             cfg.data.width // (cfg.autoencoder.spatial_factor * cfg.dit.patch_size))
    gather = (2 * P["dit_block"] * (2 if prec == "bf16" else 4)) if fsdp else 0
    t_shard = gpus if st.teacher_shard and gpus > 1 else 1
    t_held, t_gathered = teacher_bytes_per_gpu(P, cfg.dit.depth, st.teacher_dtype, t_shard)
    b_act = 2 if prec == "bf16" else 4
    plans = []
    for stage, phase, length, batch in _phases(st):
        bpg = max(1, math.ceil(batch / dp))
        if stage == "teacher":
            trainable = [P["dit"] + P["text"]]
            frozen = P["autoencoder"]
            teacher = 0.0                            # trained here, counted in weights
            F = length
            T = F * n
            T_loc = loc(F) * n
            acts = bpg * dit_activation_bytes(cfg, T_loc, prec, ck, T)
            traffic = bpg * cp_kv_traffic_bytes(cfg, T, prec, ck, cp)
            kv = T                                   # bidirectional: every token sees all
            flops = 3 * T * dit_flops_per_token(cfg, P["dit"], kv)
        elif stage == "student_init":
            s = st.student_init
            trainable = [P["dit"]]
            frozen = P["text"] + P["autoencoder"]
            teacher = t_held + t_gathered            # frozen teacher (ODE trajectories)
            F = 1 + s.num_blocks * fpb
            T = F * n
            Pf = 1 + (s.num_blocks - s.num_noisy_blocks) * fpb
            held = kv_token_counts(Pf, gh_gw, cfg.memory.window, cfg.memory.schedule, cfg.memory.enabled)["held"]
            T_loc = (loc(Pf) + loc(F - Pf)) * n          # prefix and noisy calls, each sharded
            acts = bpg * (dit_activation_bytes(cfg, T_loc, prec, ck, T) + kv_cache_bytes(cfg, held, prec))
            traffic = bpg * cp_kv_traffic_bytes(cfg, T, prec, ck, cp)
            flops = 3 * T * dit_flops_per_token(cfg, P["dit"], (held + T) / 2)
        else:
            trainable = [P["dit"], P["dit"]]               # generator + critic
            frozen = P["text"] + P["autoencoder"]
            teacher = t_held + t_gathered            # frozen teacher (DMD's real score)
            F = 1 + length * fpb
            T = F * n
            held = kv_token_counts(F - fpb, gh_gw, cfg.memory.window, cfg.memory.schedule, cfg.memory.enabled)["held"]
            replay = dit_activation_bytes(cfg, loc(fpb) * n, prec, ck, fpb * n) + kv_cache_bytes(cfg, held, prec)
            critic = dit_activation_bytes(cfg, loc(F) * n, prec, ck, T)
            acts = bpg * max(replay, critic)
            T_loc = loc(F) * n
            # replay (one fwd+bwd per block, all blocks) and the critic; rollout commits: forward only
            traffic = bpg * (cp_kv_traffic_bytes(cfg, T - n, prec, ck, cp) / st.distill.gen_update_every
                             + cp_kv_traffic_bytes(cfg, T, prec, ck, cp))
            # per step: rollout (<= 4 no-grad denoises + commit per block), DMD (teacher x2 with CFG,
            # critic: no-grad forwards), replay (one fwd+bwd per block), critic fwd+bwd
            fwd = dit_flops_per_token(cfg, P["dit"], (held + n) / 2)
            bi = dit_flops_per_token(cfg, P["dit"], T)
            flops = T * (5 * fwd + 3 * bi + 3 * fwd + 3 * bi) / st.distill.gen_update_every
        if ck:
            flops *= 4 / 3
        train_p = sum(trainable)
        gib = {
            "weights (trainable, fp32)": 4 * train_p / shard / GIB,
            "optimizer (AdamW, fp32)": 8 * train_p / shard / GIB,
            "frozen text + autoencoder (fp32, replicated)": 4 * frozen / GIB,
            "frozen teacher (+ gathered)": teacher / GIB,
            "gradients (fp32)": 4 * train_p / shard / GIB,
            "FSDP gathered blocks": gather / GIB,
            "activations (+ KV cache)": acts / GIB,
        }
        static = (gib["weights (trainable, fp32)"] + gib["optimizer (AdamW, fp32)"] + gib["frozen teacher (+ gathered)"]
                  + gib["frozen text + autoencoder (fp32, replicated)"] + gib["FSDP gathered blocks"])
        total = static + max(gib["activations (+ KV cache)"], gib["gradients (fp32)"])
        p = StagePlan(stage, phase, T, bpg, gib, total, flops * batch / 1e12, total <= gpu_mem_gib,
                      context_parallel=cp, tokens_per_gpu=T_loc, cp_traffic_gib=traffic / GIB,
                      teacher_dtype=st.teacher_dtype, teacher_shard=t_shard)
        if not p.fits:
            tips = []
            if not ck:
                tips.append("train.activation_checkpointing: true")
            if prec != "bf16":
                tips.append("train.precision: bf16")
            if not fsdp and gpus > 1:
                tips.append("train.dist: fsdp")
            if gib["frozen teacher (+ gathered)"] > 0.25 * gpu_mem_gib:
                if st.teacher_dtype != "bf16":
                    tips.append("train.teacher_dtype: bf16")
                if t_shard == 1 and gpus > 1:
                    tips.append("train.teacher_shard: true")
            if gib["activations (+ KV cache)"] > 0.5 * gpu_mem_gib:
                if bpg > 1:
                    tips.append(f"a global batch of at most {dp} (one sample per {'CP group' if cp > 1 else 'GPU'})")
                want = 2 * cp
                while want <= gpus and gpus % want:
                    want += cp
                if want <= gpus:
                    tips.append(f"train.context_parallel: {want} (activations / {want} over the {T} tokens; "
                                f"batch per step at most {gpus // want} samples)")
                else:
                    tips.append("more GPUs for context parallelism or shorter clips")
            p.advice = "; ".join(tips) or "more GPUs"
        plans.append(p)
    return plans


def format_plan(cfg, plans: list[StagePlan], gpus: int, gpu_mem_gib: float, settings=None) -> str:
    st = settings or train_settings(cfg)
    P = model_parameters(cfg)
    lines = [f"# Training plan: {cfg.name} on {gpus} x {gpu_mem_gib:g} GiB",
             "",
             f"DiT {P['dit'] / 1e6:.1f}M parameters ({cfg.dit.depth} blocks of {P['dit_block'] / 1e6:.1f}M, width "
             f"{cfg.dit.dim}), autoencoder {P['autoencoder'] / 1e6:.1f}M, text encoder {P['text'] / 1e6:.1f}M; "
             f"{tokens_per_latent_frame(cfg)} tokens per latent frame; precision {st.precision}, activation "
             f"checkpointing {'on' if st.activation_checkpointing else 'off'}, dist {st.dist}, attention "
             f"{cfg.dit.attention}; activations {activation_bytes_per_token_layer(cfg, st.precision) / 1024:.1f} KiB "
             f"per token per block without checkpointing.",
             ]
    if plans:
        t = plans[-1]
        lines[-1] += (f" Frozen teacher of student init and distillation: {t.teacher_dtype}, " +
                      (f"sharded over {t.teacher_shard} GPUs (column frozen teacher: its shard + the block(s) and root "
                       f"parameters one forward gathers)." if t.teacher_shard > 1 else "replicated on every GPU."))
    cp = plans[0].context_parallel if plans else 1
    if cp > 1:
        lines += ["", f"Context parallelism {cp}: {gpus // cp} data-parallel groups of {cp} GPUs, each GPU holding "
                      f"ceil(F / {cp}) of a sample's F latent frames; attention all-gathers K/V per block (CP K/V = "
                      f"GiB per GPU and step moved by those all-gathers and the gradients' reduce-scatters)."]
    cols = "| stage | phase | tokens/sample | " + ("CP | tokens/GPU | " if cp > 1 else "") + \
        "batch/GPU | weights | optimizer | frozen text+AE | frozen teacher | grads | FSDP gather | activations+KV | peak GiB/GPU | " + \
        "fits | " + \
        "step TFLOP | " + ("CP K/V GiB | " if cp > 1 else "") + "what to change |"
    lines += ["", cols, "|" + "|".join("---" if c.strip() in ("stage", "phase", "fits", "what to change") else "---:"
                                       for c in cols.strip("|").split("|")) + "|"]
    for p in plans:
        g = list(p.gib.values())
        lines.append(f"| {p.stage} | {p.phase} | {p.tokens_per_sample} | " +
                     (f"{p.context_parallel} | {p.tokens_per_gpu} | " if cp > 1 else "") + f"{p.batch_per_gpu} | " +
                     " | ".join(f"{x:.1f}" for x in g) +
                     f" | {p.total_gib:.1f} | {'yes' if p.fits else 'NO'} | {p.step_tflops:.0f} | " +
                     (f"{p.cp_traffic_gib:.0f} | " if cp > 1 else "") + f"{p.advice} |")
    return "\n".join(lines) + "\n"


__all__ = ["plan_stages", "format_plan", "dit_parameters", "model_parameters", "block_saved_elements_per_token",
           "activation_bytes_per_token_layer", "dit_activation_bytes", "kv_cache_bytes", "cp_kv_traffic_bytes",
           "teacher_bytes_per_gpu", "StagePlan"]
