"""RELIC GPU measurement: streaming FPS and one training step per stage with peak memory
(results -> reports/perf_gpu.{md,json}).

    python perf/perf_gpu.py [--config relic_model/configs/gpu.yaml] [--device cuda|cpu]
                                      [--tiny] [--out reports]

1. Streaming: ``relic_model.inference.streaming.StreamingGenerator`` (random, seeded weights) at the
   config's resolution (832x480 for gpu.yaml) streams ``--warmup`` chunks, then ``--chunks`` chunks
   are timed (chunk = one block of ``dit.frames_per_block`` latent frames = 4x as many video frames: all
   denoising steps + the cache-update pass + streaming decode to uint8), as in perf/perf_streaming.py (its ``walk_actions`` and
   ``time_chunks`` are reused). FPS = generated video frames / median chunk latency.
2. Training: one real ``train_step`` of each stage class (``TeacherStage``, ``StudentInitStage``,
   ``DistillStage`` from relic_model/train/), single process, with the config's precision and
   activation checkpointing. The stage objects are assembled around random-weight models and
   synthetic inputs of the right shapes (random latent pools and, for student-init, random ODE
   trajectories) instead of a corpus and earlier stages' weights: memory and speed do not depend
   on the values. Shapes: the first curriculum phase (teacher latent frames, distill rollout
   blocks), student-init ``num_blocks``, per-GPU batch ``--batch`` (default 1 = batch 8 over 8 GPUs).
   The distill step is a generator + critic update step (the heavier kind). A warm-up step runs
   first so the AdamW state exists; the second step is timed and measured.
   Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over the measured step (everything
   resident: weights, optimizer state, activations); on CPU the method of
   perf/perf_memory_plan.py: parameter + optimizer-state bytes alive before the step +
   the peak of torch's CPU allocations during it (``torch_cpu_peak_bytes``, torch profiler events).
   A step that runs out of memory is reported as OOM instead of aborting the script.

``--tiny`` shrinks the config (112x64 video, a 2-block width-64 DiT, small autoencoder and text
encoder, at most 4 teacher latent frames and 2 blocks per rollout) so everything runs on a CPU in
seconds; it keeps the config's block size, memory window and train settings. Without CUDA, the script
refuses to run the full-size config unless ``--device cpu`` or ``--tiny`` is given (exit 1).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from datagen.atomic import atomic_write_text  # noqa: E402
from perf.perf_streaming import time_chunks, walk_actions  # noqa: E402
from relic_model.config import load_config  # noqa: E402
from relic_model.data.latent_cache import LatentPool  # noqa: E402
from relic_model.distributed import DistInfo, wrap_model  # noqa: E402
from relic_model.inference.checkpoint import build_models  # noqa: E402
from relic_model.inference.streaming import StreamingGenerator  # noqa: E402
from relic_model.pipelines.memory_probe import torch_cpu_peak_bytes  # noqa: E402
from relic_model.train.common import RunContext, build_dit, build_text, configure_dit, frozen  # noqa: E402
from relic_model.train.settings import train_settings  # noqa: E402
from relic_model.train.stage_distill import DistillStage  # noqa: E402
from relic_model.train.stage_student_init import StudentInitStage  # noqa: E402
from relic_model.train.stage_teacher import TeacherStage  # noqa: E402

DEFAULT_CONFIG = str(ROOT / "relic_model" / "configs" / "gpu.yaml")


# ---------------------------------------------------------------------------- config
def tiny_config(cfg):
    """``cfg`` shrunk to CPU size: tiny-config resolution, autoencoder and text encoder, a 2-block DiT."""
    t = load_config("tiny")
    c = copy.deepcopy(cfg)
    c.name = f"{cfg.name}-tiny"
    c.data = copy.deepcopy(t.data)
    c.autoencoder = copy.deepcopy(t.autoencoder)
    c.text = copy.deepcopy(t.text)
    for k, v in {"dim": 64, "depth": 2, "heads": 2, "patch_size": 1, "text_dim": t.text.dim}.items():
        setattr(c.dit, k, v)
    return c.validate()


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# ---------------------------------------------------------------------------- streaming
def measure_streaming(cfg, dev, chunks: int, warmup: int, seed: int) -> dict:
    torch.manual_seed(seed)
    dit, ae, text = (m.eval() for m in build_models(cfg, dev))
    H, W = cfg.data.height, cfg.data.width
    img = (np.random.default_rng(seed).random((H, W, 3)) * 255).astype(np.uint8)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with torch.inference_mode():
        gen = StreamingGenerator(dit, ae, text, cfg, memory=True, device=dev)
        gen.reset(img, "a quiet street with brick houses and trees", None, seed=seed)
        lat = time_chunks(gen, walk_actions(gen.frames_per_block * (warmup + chunks + 1), seed), chunks, warmup)
    med = statistics.median(lat)
    out = {"resolution": [W, H], "frames_per_chunk": gen.frames_per_block, "warmup_chunks": warmup,
           "timed_chunks": len(lat), "chunk_latency_ms_median": 1000 * med, "chunk_latency_ms_min": 1000 * min(lat),
           "chunk_latency_ms_max": 1000 * max(lat), "frames_per_s": gen.frames_per_block / med,
           "kv_tokens_held": gen.cache.token_counts()["held"], "denoising_steps": len(cfg.sampling.sigmas),
           "dit_params": sum(p.numel() for p in dit.parameters())}
    if dev.type == "cuda":
        out["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated(dev))
    del gen, dit, ae, text
    return out


# ---------------------------------------------------------------------------- training stages
class _Pools:
    """Stand-in for ``PoolSource``: random latent pools of the right shapes, keyed by latent length.

    ``get`` takes ``PoolSource.get``'s arguments; the pause probability changes nothing here (the
    latents are random, and timing does not depend on which frames a camera holds)."""

    def __init__(self, cfg, n: int, seed: int):
        self.cfg, self.n, self.seed, self.pools = cfg, n, seed, {}

    def get(self, F: int, pause_prob: float | None = None):
        if F not in self.pools:
            c = self.cfg
            g = torch.Generator().manual_seed(self.seed + F)
            h, w = c.data.height // c.autoencoder.spatial_factor, c.data.width // c.autoencoder.spatial_factor
            tf = c.autoencoder.temporal_factor
            self.pools[F] = LatentPool(torch.randn(self.n, F, c.autoencoder.latent_channels, h, w, generator=g),
                                       torch.rand(self.n, F, tf, 13, generator=g),
                                       torch.randn(self.n, F, tf, 12, generator=g) * 0.1,
                                       ["a quiet street with brick houses and trees"] * self.n)
        return self.pools[F]


def _dit(cfg, settings, dev, trainable: bool):
    m = configure_dit(build_dit(cfg).to(dev), settings)
    if trainable:
        m.train()
        return m
    return frozen(m)


def build_stage(name: str, cfg, settings, dev, batch: int, tiny: bool, seed: int):
    """A real stage object (its ``train_step`` unchanged) around random-weight models and synthetic data."""
    torch.manual_seed(seed)
    ctx = RunContext(cfg, None, Path(tempfile.gettempdir()), DistInfo(device=dev), False, settings)
    levels = [float(x) for x in cfg.sampling.sigmas]
    fpb = cfg.dit.frames_per_block
    pools = _Pools(cfg, batch, seed)
    if name == "teacher":
        s = settings.teacher
        ph = dict(s.curriculum[0])
        if tiny:
            ph["latent_frames"] = min(int(ph["latent_frames"]), 4)
        st = TeacherStage.__new__(TeacherStage)
        st.ctx, st.s, st.phases, st.total_steps, st.cfg = ctx, dataclasses.replace(s, batch=batch), [ph], ph["steps"], cfg
        st.teacher = _dit(cfg, settings, dev, True)
        st.text = build_text(cfg).to(dev)
        st.model = wrap_model(st.teacher, ctx.info, "none", settings.precision)
        st.params = list(st.teacher.parameters()) + list(st.text.parameters())
        st.opt = torch.optim.AdamW(st.params, lr=s.lr, weight_decay=s.weight_decay)
        st.pools = pools
        shape = {"latent_frames": int(ph["latent_frames"])}
        return st, [0, 1], shape, [st.teacher, st.text], [st.opt]
    if name == "student_init":
        s = settings.student_init
        nb = min(s.num_blocks, 2) if tiny else s.num_blocks
        s = dataclasses.replace(s, batch=batch, num_blocks=nb, num_noisy_blocks=min(s.num_noisy_blocks, nb))
        st = StudentInitStage.__new__(StudentInitStage)
        st.ctx, st.s, st.total_steps, st.cfg = ctx, s, s.steps, cfg
        st.teacher = _dit(cfg, settings, dev, False)
        st.text = frozen(build_text(cfg).to(dev))
        st.student = _dit(cfg, settings, dev, True)
        st.model = wrap_model(st.student, ctx.info, "none", settings.precision)
        st.opt = torch.optim.AdamW(st.student.parameters(), lr=s.lr, weight_decay=0.0)
        st.fpb, st.F, st.levels, st.pools = fpb, 1 + nb * fpb, levels, pools
        st.context_sigma = float(cfg.sampling.context_sigma)
        st.context_scope = str(cfg.sampling.context_scope)
        x0 = pools.get(st.F).latents
        g = torch.Generator().manual_seed(seed + 1)
        st._traj = {"x0": x0.clone(), "xt": torch.randn(x0.shape[0], len(levels), *x0.shape[1:], generator=g)}
        shape = {"latent_frames": st.F, "num_blocks": nb, "num_noisy_blocks": s.num_noisy_blocks}
        return st, [0, 1], shape, [st.teacher, st.text, st.student], [st.opt]
    if name == "distill":
        s = settings.distill
        ph = dict(s.curriculum[0])
        if tiny:
            ph["num_blocks"] = min(int(ph["num_blocks"]), 2)
        st = DistillStage.__new__(DistillStage)
        st.ctx, st.s, st.phases, st.total_steps = ctx, dataclasses.replace(s, batch=batch), [ph], ph["steps"]
        st.cfg = cfg
        st.teacher = _dit(cfg, settings, dev, False)
        st.text = frozen(build_text(cfg).to(dev))
        st.student = _dit(cfg, settings, dev, True)
        st.fake = _dit(cfg, settings, dev, True)
        st.student_w = wrap_model(st.student, ctx.info, "none", settings.precision)
        st.fake_w = wrap_model(st.fake, ctx.info, "none", settings.precision)
        st.opt_gen = torch.optim.AdamW(st.student.parameters(), lr=s.lr_gen, weight_decay=0.0, betas=(0.0, 0.999))
        st.opt_fake = torch.optim.AdamW(st.fake.parameters(), lr=s.lr_fake, weight_decay=0.0, betas=(0.0, 0.999))
        st.fpb, st.levels, st.pools = fpb, levels, pools
        st.base_context_sigma = float(cfg.sampling.context_sigma)
        st.base_context_scope = str(cfg.sampling.context_scope)
        with torch.no_grad():
            st.null_text = st.text.encode_text([""])
        st.last_gen = {}
        k = s.gen_update_every - 1           # a step with both the generator and the critic update
        shape = {"num_blocks": int(ph["num_blocks"]), "latent_frames": 1 + int(ph["num_blocks"]) * fpb,
                 "gen_update": True}
        return st, [k, k + s.gen_update_every], shape, [st.teacher, st.text, st.student, st.fake], [st.opt_gen, st.opt_fake]
    raise ValueError(name)


def _static_bytes(modules, opts) -> int:
    seen, n = set(), 0
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            if id(t) not in seen:
                seen.add(id(t))
                n += t.numel() * t.element_size()
    for o in opts:
        n += sum(t.numel() * t.element_size() for st in o.state.values() for t in st.values() if torch.is_tensor(t))
    return n


def measure_stage(name, cfg, settings, dev, batch, tiny, seed) -> dict:
    st = modules = opts = None
    row = {"stage": name, "batch_per_gpu": batch, "precision": settings.precision,
           "activation_checkpointing": bool(settings.activation_checkpointing)}
    try:
        st, steps, shape, modules, opts = build_stage(name, cfg, settings, dev, batch, tiny, seed)
        row.update(shape)
        row["trainable_params"] = sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)
        st.train_step(steps[0])                    # warm-up: creates the AdamW state
        sync(dev)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
            t0 = time.perf_counter()
            out = st.train_step(steps[1])
            sync(dev)
            row["step_s"] = time.perf_counter() - t0
            row["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated(dev))
            row["peak_mem_method"] = "torch.cuda.max_memory_allocated"
        else:
            static = _static_bytes(modules, opts)
            t0 = time.perf_counter()
            peak, out = torch_cpu_peak_bytes(st.train_step, steps[1])
            row["step_s"] = time.perf_counter() - t0  # includes the profiler's overhead
            row["peak_mem_bytes"] = int(static + peak)
            row["peak_mem_method"] = "static params+optimizer bytes + torch_cpu_peak_bytes (profiler)"
        row["metrics"] = {k: float(v) for k, v in out.items()}
        row["status"] = "ok"
    except torch.cuda.OutOfMemoryError as e:
        row["status"] = "OOM"
        row["error"] = str(e).splitlines()[0]
        row["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated(dev))
    finally:
        st = modules = opts = None
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return row


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=DEFAULT_CONFIG)
    ap.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda if available")
    ap.add_argument("--tiny", action="store_true", help="shrink the config so it runs on a CPU in seconds")
    ap.add_argument("--out", default=str(ROOT / "reports"))
    ap.add_argument("--batch", type=int, default=1, help="per-GPU batch of each training step")
    ap.add_argument("--chunks", type=int, default=8, help="timed streaming chunks")
    ap.add_argument("--warmup", type=int, default=2, help="untimed streaming chunks first")
    ap.add_argument("--stages", default="teacher,student_init,distill")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else ("cpu" if args.tiny else None)
    if args.device in (None, "cuda") and not torch.cuda.is_available():
        print("perf_gpu: no GPU (torch.cuda.is_available() is False); pass --device cpu or --tiny to run on the CPU",
              file=sys.stderr)
        return 1

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cfg = load_config(args.config)
    settings = train_settings(cfg)       # from the full config: the GPU config's explicit schedules
    if args.tiny:
        cfg = tiny_config(cfg)
    try:
        shown = str(Path(args.config).resolve().relative_to(ROOT))
    except ValueError:
        shown = args.config
    res = {"config": shown, "config_name": cfg.name, "tiny": args.tiny, "device": str(dev),
           "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
           "resolution": [cfg.data.width, cfg.data.height],
           "dit": {"dim": cfg.dit.dim, "depth": cfg.dit.depth, "heads": cfg.dit.heads, "patch_size": cfg.dit.patch_size,
                   "frames_per_block": cfg.dit.frames_per_block},
           "torch": torch.__version__, "threads": args.threads, "seed": args.seed, "weights": f"random init (seed {args.seed})"}
    print(f"[perf_gpu] {cfg.name} at {cfg.data.width}x{cfg.data.height} on {dev}", file=sys.stderr)
    res["streaming"] = measure_streaming(cfg, dev, args.chunks, args.warmup, args.seed)
    print(f"[perf_gpu] streaming {res['streaming']['frames_per_s']:.2f} frames/s", file=sys.stderr)
    res["train"] = []
    for name in [s for s in args.stages.split(",") if s]:
        row = measure_stage(name, cfg, settings, dev, args.batch, args.tiny, args.seed)
        res["train"].append(row)
        print(f"[perf_gpu] {name}: {row['status']} peak {row['peak_mem_bytes'] / 2**20:.1f} MiB "
              f"{row.get('step_s', float('nan')):.2f} s", file=sys.stderr)
    out = Path(args.out)
    atomic_write_text(out / "perf_gpu.json", json.dumps(res, indent=2))
    atomic_write_text(out / "perf_gpu.md", markdown(res))
    return 0 if all(r["status"] == "ok" for r in res["train"]) else 2


def markdown(res) -> str:
    s = res["streaming"]
    size = ("TINY (--tiny: config shrunk to CPU size, not the GPU model)" if res["tiny"]
            else "full size (the config as written)")
    L = ["# RELIC GPU measurement: streaming FPS and one training step per stage", "",
         f"Produced by `python perf/perf_gpu.py --config {res['config']} --device {res['device']}"
         f"{' --tiny' if res['tiny'] else ''}` (method: the script's docstring).", "",
         f"- **device: {res['device']}** ({res['device_name']}); **size: {size}**",
         f"- config `{res['config_name']}` at {res['resolution'][0]}x{res['resolution'][1]}; DiT {res['dit']}; "
         f"weights: {res['weights']}; torch {res['torch']}, {res['threads']} CPU threads", "",
         "## Streaming", "",
         f"- **{s['frames_per_s']:.2f} generated frames/s** (median {s['chunk_latency_ms_median']:.1f} ms per "
         f"{s['frames_per_chunk']}-frame chunk; min {s['chunk_latency_ms_min']:.1f}, max {s['chunk_latency_ms_max']:.1f}; "
         f"{s['timed_chunks']} timed after {s['warmup_chunks']} warm-up chunks; {s['denoising_steps']} denoising steps "
         f"+ cache update + streaming decode)",
         f"- KV tokens held per layer at the end: {s['kv_tokens_held']}"
         + (f"; peak GPU memory {s['peak_mem_bytes'] / 2**30:.2f} GiB" if "peak_mem_bytes" in s else ""), "",
         "## One training step per stage", "",
         "| stage | status | latent frames | batch/GPU | precision | act. ckpt | trainable params | peak memory (MiB) | step s |",
         "|---|---|---:|---:|---|---|---:|---:|---:|"]
    for r in res["train"]:
        L.append(f"| {r['stage']} | {r['status']} | {r.get('latent_frames', '')} | {r['batch_per_gpu']} | {r['precision']} | "
                 f"{r['activation_checkpointing']} | {r.get('trainable_params', 0) / 1e6:.2f}M | "
                 f"{r['peak_mem_bytes'] / 2**20:.1f} | {r.get('step_s', float('nan')):.2f} |")
    meth = next((r["peak_mem_method"] for r in res["train"] if "peak_mem_method" in r), "")
    L += ["", f"Peak memory: {meth}. Single process (no FSDP sharding): per-GPU batch as listed.", ""]
    if res["tiny"] or res["device"] == "cpu":
        L += ["These numbers are NOT GPU measurements: they check that the script runs end to end. "
              "Run it without `--tiny` on a CUDA machine for the real ones.", ""]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
