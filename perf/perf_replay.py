"""Replayed back-propagation vs naive full-graph back-propagation on RelicDiT.

For rollouts of N blocks (N in --blocks), measures with ``SavedTensorMeter`` the peak bytes of
autograd-saved tensors alive at once (naive: every block's exit-step graph kept until one backward;
replay: one block at a time), and the max relative parameter-gradient difference between the two
(max over parameters of max|g_replay - g_naive| / max|g_naive|).

    python perf/perf_replay.py [--config tiny] [--blocks 4 8 16] [--batch 1]

Writes reports/perf_replay.md and .json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relic_model.config import load_config  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--blocks", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reports", default=str(ROOT / "reports"))
    a = ap.parse_args(argv)
    import torch
    from relic_model.nn.dit import RelicDiT
    from relic_model.pipelines.conditioning import Cond
    from relic_model.pipelines.dit_generator import DiTBlockGenerator, score_fn
    from relic_model.pipelines.memory_probe import SavedTensorMeter
    from relic_model.pipelines.replay_backprop import dmd_targets, naive_full_graph_backward, replay_backward
    from relic_model.pipelines.self_forcing import rollout

    torch.set_num_threads(a.threads)
    cfg = load_config(a.config)
    torch.manual_seed(0)
    student, real, fake = RelicDiT(cfg), RelicDiT(cfg), RelicDiT(cfg)
    with torch.no_grad():
        for m in (student, real, fake):
            m.head.weight.normal_(0, 0.05)
    for p in list(real.parameters()) + list(fake.parameters()):
        p.requires_grad_(False)
    gen = DiTBlockGenerator(student)
    f = cfg.autoencoder.spatial_factor
    h, w, C = cfg.data.height // f, cfg.data.width // f, cfg.autoencoder.latent_channels
    fpb, ts = cfg.dit.frames_per_block, cfg.sampling.sigmas
    rows = []
    for nb in a.blocks:
        B, F = a.batch, 1 + nb * fpb
        g = torch.Generator().manual_seed(1)
        cond = Cond({"actions": torch.rand(B, F, 4, 13, generator=g), "poses": torch.randn(B, F, 4, 12, generator=g)},
                    {"text": torch.randn(B, cfg.text.max_tokens, cfg.text.dim, generator=g)})
        first = torch.randn(B, 1, C, h, w, generator=g)
        exits = [len(ts) - 1] * nb
        student.zero_grad()
        t0 = time.perf_counter()
        with SavedTensorMeter() as mn:
            ro = rollout(gen, first, cond, nb, fpb, ts, torch.Generator().manual_seed(3), exit_steps=exits, grad_exit=True)
            tg = dmd_targets(ro.video, score_fn(real, cond), score_fn(fake, cond), True, torch.Generator().manual_seed(4))
            naive_full_graph_backward(ro.video, tg)
        t_naive = time.perf_counter() - t0
        gn = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
        del ro
        student.zero_grad()
        t0 = time.perf_counter()
        ro = rollout(gen, first, cond, nb, fpb, ts, torch.Generator().manual_seed(3), exit_steps=exits)
        tg = dmd_targets(ro.video, score_fn(real, cond), score_fn(fake, cond), True, torch.Generator().manual_seed(4))
        with SavedTensorMeter() as mr:
            replay_backward(gen, ro, cond, tg.out_grad)
        t_replay = time.perf_counter() - t0
        err = max(float((p.grad - gn[n]).abs().max() / gn[n].abs().max().clamp_min(1e-30))
                  for n, p in student.named_parameters() if p.grad is not None)
        rows.append({"blocks": nb, "latent_frames": F, "naive_peak_bytes": mn.peak_bytes,
                     "replay_peak_bytes": mr.peak_bytes, "ratio": round(mn.peak_bytes / mr.peak_bytes, 2),
                     "max_rel_grad_diff": err, "naive_s": round(t_naive, 2), "replay_s": round(t_replay, 2)})
        print(rows[-1], flush=True)
    rep = Path(a.reports)
    rep.mkdir(parents=True, exist_ok=True)
    res = {"config": a.config, "batch": a.batch, "threads": a.threads, "rows": rows}
    (rep / "perf_replay.json").write_text(json.dumps(res, indent=2))
    md = [f"# Replayed back-propagation vs naive full graph ({a.config} config, batch {a.batch})", "",
          f"Command: `python perf/perf_replay.py --config {a.config} --blocks "
          f"{' '.join(map(str, a.blocks))} --batch {a.batch}`", "",
          "Peak bytes of autograd-saved tensors alive at once (`SavedTensorMeter`); gradient difference = "
          "max over parameters of max|g_replay - g_naive| / max|g_naive| (float32).", "",
          "| blocks | latent frames | naive peak (MB) | replay peak (MB) | naive / replay | max rel. grad diff | naive s | replay s |",
          "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| {r['blocks']} | {r['latent_frames']} | {r['naive_peak_bytes'] / 1e6:.1f} | "
                  f"{r['replay_peak_bytes'] / 1e6:.1f} | {r['ratio']} | {r['max_rel_grad_diff']:.1e} | "
                  f"{r['naive_s']} | {r['replay_s']} |")
    (rep / "perf_replay.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
