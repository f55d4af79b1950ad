"""Device check of the frozen-teacher switches (``train.teacher_dtype`` / ``train.teacher_shard``).

    python -m perf.check_frozen_teacher [--device cuda] [--config gpu] [--frames 5]
        [--skip-stages] [--out RESULT.json] [--work DIR]

Three parts, one process (a real shard over several GPUs needs torchrun with >= 2 GPUs; the CPU
tests cover that with 2 gloo ranks, tests/relic_model/test_frozen_teacher.py):

- ``dtype``: a random-weight RelicDiT of ``--config`` (default gpu.yaml, 1.38B) on ``--device``,
  one no-grad bidirectional forward over ``--frames`` latent frames at the config's resolution:
  the fp32 teacher (plain, and under bf16 autocast = the GPU configs' precision) vs the bf16
  teacher (``prepare_frozen_teacher(.., "bf16")``): relative L2 error of the velocity, parameter
  bytes, allocated bytes freed by the cast, extra peak during the forward, forward seconds;
- ``shard``: FSDP2 ``shard_frozen`` over a one-rank process group (nccl on CUDA, gloo on CPU) of a
  small DiT: outputs equal to the unsharded teacher, every parameter resharded after the forward
  (the code path on the device; nothing is split over one rank);
- ``stages`` (unless ``--skip-stages``): all four stages of the micro config on ``--device`` with
  ``precision: bf16``, checkpointing, ``teacher_dtype: bf16`` and ``teacher_shard: true`` (a no-op
  in one process); the distillation stage's teacher dtype/device and last losses.

Prints a JSON object (and writes it to ``--out``).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from relic_model.config import load_config
from relic_model.data.synthetic import write_synthetic_corpus
from relic_model.distributed import DistInfo
from relic_model.nn.dit import RelicDiT
from relic_model.train.common import RunContext
from relic_model.train.frozen_teacher import prepare_frozen_teacher, shard_frozen, teacher_bytes
from relic_model.train.plan import tokens_per_latent_frame
from relic_model.train.presets import micro_config
from relic_model.train.run import make_stage, run_stage_named

GIB = 2 ** 30


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _inputs(cfg, dev, B, F, seed=1):
    g = torch.Generator(device=dev).manual_seed(seed)
    C, h, w = cfg.autoencoder.latent_channels, cfg.data.height // cfg.autoencoder.spatial_factor, \
        cfg.data.width // cfg.autoencoder.spatial_factor
    sig = torch.rand(B, F, generator=g, device=dev)
    sig[:, 0] = 0
    return (torch.randn(B, F, C, h, w, generator=g, device=dev), sig,
            torch.randn(B, 16, cfg.text.dim, generator=g, device=dev), torch.rand(B, F, 4, 13, generator=g, device=dev),
            torch.randn(B, F, 4, 12, generator=g, device=dev) * 0.1, "bidirectional")


def _forward(model, args, dev):
    """(output, extra peak GiB over the allocation before, seconds) of one no-grad forward."""
    _sync(dev)
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t = time.perf_counter()
    with torch.no_grad():
        out = model(*args)
    _sync(dev)
    sec = time.perf_counter() - t
    return out, ((torch.cuda.max_memory_allocated() - base) / GIB if cuda else float("nan")), sec


def check_dtype(cfg, dev, frames: int) -> dict:
    torch.manual_seed(0)
    with torch.device(dev):
        m = RelicDiT(cfg)
    for p in m.parameters():             # non-zero adaLN gates
        if p.dim() == 2 and p.shape[0] == 6:
            torch.nn.init.normal_(p, std=0.05)
    m.eval().requires_grad_(False)
    args = _inputs(cfg, dev, 1, frames)
    ref, _, _ = _forward(m, args, dev)                      # fp32, no autocast
    m.set_precision("bf16")
    _forward(m, args, dev)                                  # warm-up
    ac, pk_ac, t_ac = _forward(m, args, dev)                # fp32 weights, bf16 autocast
    r = {"tokens": frames * tokens_per_latent_frame(cfg), "params_fp32_gib": teacher_bytes(m) / GIB}
    before = torch.cuda.memory_allocated() if dev.type == "cuda" else 0
    prepare_frozen_teacher(m, DistInfo(device=dev), "bf16")
    _sync(dev)
    r["params_bf16_gib"] = teacher_bytes(m) / GIB
    if dev.type == "cuda":
        r["allocated_freed_by_cast_gib"] = (before - torch.cuda.memory_allocated()) / GIB
    _forward(m, args, dev)
    b, pk_b, t_b = _forward(m, args, dev)
    rel = lambda x, y: float((x - y).float().norm() / y.float().norm())
    r.update(rel_err_bf16_vs_fp32=rel(b, ref), rel_err_fp32_autocast_vs_fp32=rel(ac, ref),
             rel_err_bf16_vs_fp32_autocast=rel(b, ac), fwd_extra_peak_gib_fp32_autocast=pk_ac,
             fwd_extra_peak_gib_bf16=pk_b, fwd_s_fp32_autocast=t_ac, fwd_s_bf16=t_b, out_dtype=str(b.dtype))
    return r


def check_shard(dev) -> dict:
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor
    cfg = load_config("tiny")
    cfg.dit.dim, cfg.dit.depth, cfg.dit.heads = 64, 3, 4
    cfg.validate()
    torch.manual_seed(0)
    with torch.device(dev):
        t = RelicDiT(cfg)
    args = _inputs(cfg, dev, 2, 5)
    fresh = not dist.is_initialized()
    if fresh:   # an in-process store: one rank, no ports
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", store=dist.HashStore(), rank=0, world_size=1)
    r = {}
    try:
        for dt in ("fp32", "bf16"):
            u = prepare_frozen_teacher(copy.deepcopy(t), DistInfo(device=dev), dt)
            sh = shard_frozen(prepare_frozen_teacher(copy.deepcopy(t), DistInfo(device=dev), dt))
            with torch.no_grad():
                a, b, c = u(*args), sh(*args), sh(*args)
            r[f"{dt}_sharded_equal"] = bool(torch.equal(a, b) and torch.equal(b, c))
            r[f"{dt}_resharded_after_forward"] = all(isinstance(p, DTensor) for p in sh.parameters())
    finally:
        if fresh:
            dist.destroy_process_group()
    return r


def check_stages(dev, work: Path) -> dict:
    import pandas as pd
    corpus = write_synthetic_corpus(work / "corpus", episodes=2, frames=30, height=32, width=48)
    cfg = micro_config()
    cfg.train.update(teacher_dtype="bf16", teacher_shard=True, precision="bf16", activation_checkpointing=True)
    ctx = RunContext(cfg, corpus, work / "run", DistInfo(device=dev), progress=False)
    r = {}
    for st in ("autoencoder", "teacher", "student_init", "distill"):
        t = time.perf_counter()
        run_stage_named(ctx, st)
        r[f"{st}_s"] = round(time.perf_counter() - t, 2)
    d = make_stage(ctx, "distill", None)
    r["distill_teacher_dtypes"] = sorted({str(p.dtype) for p in d.teacher.parameters()})
    r["distill_teacher_device"] = str(next(d.teacher.parameters()).device)
    r["distill_critic_dtypes"] = sorted({str(p.dtype) for p in d.fake.parameters()})
    log = pd.read_csv(work / "run/distill/losses.csv")
    r["distill_last_losses"] = {k: float(log.iloc[-1][k]) for k in ("dmd", "fake_fm") if k in log.columns}
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--config", default="gpu", help="config of the dtype check's DiT (gpu = 1.38B)")
    ap.add_argument("--frames", type=int, default=5, help="latent frames of the dtype check's forward")
    ap.add_argument("--skip-stages", action="store_true")
    ap.add_argument("--work", default=None, help="folder for the stages' corpus and run (default: a temp dir)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "config": a.config, "dtype": check_dtype(load_config(a.config), dev, a.frames), "shard": check_shard(dev)}
    if not a.skip_stages:
        with tempfile.TemporaryDirectory() as tmp:
            res["stages"] = check_stages(dev, Path(a.work or tmp))
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0 if all(res["shard"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
