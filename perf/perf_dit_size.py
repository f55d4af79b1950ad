"""Which DiT size can the bundled model afford? Streaming speed and training-step cost by width x depth.

    python perf/perf_dit_size.py [--config relic_model/configs/bundled.yaml] [--sizes 128x4,192x6,256x6,256x8]
                                 [--threads 2] [--out reports/perf_dit_size.md]

Issue 20 asks for the bundled size to be chosen by measurement ("a larger DiT if it still streams
>= 16 frames/s"). For each ``WIDTHxDEPTH`` (heads = width / 32) the bundled recipe's config is
changed only in ``dit.dim`` / ``dit.depth`` / ``dit.heads`` and, with random (seeded) weights,
since speed does not depend on them:

1. streaming: 20 s of video are really streamed with memory (the paper's compressed cache), then
   ``--chunks`` 4-frame chunks are timed (denoise + cache update + the full streaming decoder), as
   in ``perf/perf_streaming.py``'s real-time bar (bar: >= 16 generated frames/s);
2. training: one teacher step (bidirectional flow matching forward + backward + clipped AdamW) on a
   clip of ``--latent-frames`` latent frames (the recipe's longest teacher clip: 40), batch 1,
   median of ``--train-repeats`` after a warm-up step; the recipe's stages 2-4 are dominated by such
   forward/backward passes, so their wall time scales about with this number.

Writes Markdown to ``--out`` (and a .json beside it). Numbers are this machine's and its load's
(recorded): compare rows of one run, not runs.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # see perf_streaming.py: shared CPU

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from perf.perf_streaming import time_chunks, walk_actions  # noqa: E402
from relic_model.config import load_config  # noqa: E402
from datagen.atomic import atomic_write_text  # noqa: E402
from relic_model.inference.checkpoint import build_models  # noqa: E402
from relic_model.inference.streaming import StreamingGenerator  # noqa: E402
from relic_model.nn.memory import latent_frames_for_seconds  # noqa: E402


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        try:
            w, d = (int(x) for x in item.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--sizes: {item!r} is not WIDTHxDEPTH (e.g. 192x6)")
        if w % 32:
            raise SystemExit(f"--sizes: width {w} is not a multiple of 32 (heads = width / 32)")
        out.append((w, d))
    return out


def sized(cfg, width: int, depth: int):
    c = copy.deepcopy(cfg)
    c.dit.dim, c.dit.depth, c.dit.heads = width, depth, width // 32
    return c.validate()


def streaming_fps(cfg, dit, ae, text, chunks: int, seed: int) -> dict:
    H, W, fps = cfg.data.height, cfg.data.width, cfg.data.fps
    img = (np.random.default_rng(seed).random((H, W, 3)) * 255).astype(np.uint8)
    f20 = latent_frames_for_seconds(20, fps, cfg.autoencoder.temporal_factor)
    acts = walk_actions(4 * (f20 + chunks + 2), seed)
    with torch.inference_mode():
        gen = StreamingGenerator(dit, ae, text, cfg, memory=True)
        gen.reset(img, "a quiet street with brick houses and trees", None, seed=seed)
        gen.step(acts[:4 * (f20 - 1)], 1.0)
        lat = time_chunks(gen, acts[4 * (f20 - 1):], chunks)
    med = statistics.median(lat)
    return {"chunk_latency_ms_median": 1000 * med, "frames_per_s": gen.frames_per_block / med,
            "kv_tokens_held": gen.cache.token_counts()["held"]}


def teacher_step_s(cfg, model: torch.nn.Module, F: int, repeats: int, seed: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(seed)
    sf = cfg.autoencoder.spatial_factor
    C, h, w = cfg.autoencoder.latent_channels, cfg.data.height // sf, cfg.data.width // sf
    x0, eps = torch.randn(1, F, C, h, w, generator=g), torch.randn(1, F, C, h, w, generator=g)
    sig = torch.rand(1, F, generator=g)
    sig[:, 0] = 0
    text = torch.randn(1, cfg.text.max_tokens, cfg.text.dim, generator=g)
    tf = cfg.autoencoder.temporal_factor
    a, p = torch.rand(1, F, tf, 13, generator=g), torch.randn(1, F, tf, 12, generator=g) * 0.1
    model.train()

    def step():
        xt = (1 - sig)[..., None, None, None] * x0 + sig[..., None, None, None] * eps
        loss = (model(xt, sig, text, a, p, "bidirectional") - (eps - x0))[:, 1:].square().mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    model.eval()
    return statistics.median(times)


def markdown(res: dict) -> str:
    base = res["rows"][0]
    sizes = ",".join(f"{r['width']}x{r['depth']}" for r in res["rows"])
    lines = ["# DiT size: streaming speed and training cost (issue 20: choose the bundled size by measurement)", "",
             f"Produced by `python perf/perf_dit_size.py --config {res['config_path']} --sizes "
             f"{sizes} --threads {res['threads']}` "
             f"on {res['cpu_count']} CPUs ({res['machine']}), torch {res['torch']}, {res['threads']} threads, "
             f"random weights; 1-min load average before / after {res['loadavg_before']:.2f} / {res['loadavg_after']:.2f}.",
             f"Config `{res['config']}` at {res['resolution'][0]}x{res['resolution'][1]}, only the DiT's width, depth and "
             "heads (width / 32) changed. Streaming: 20 s really streamed with the compressed memory, then "
             f"{res['chunks']} timed 4-frame chunks (bar >= 16 frames/s). Training: one teacher step (forward + "
             f"backward + AdamW) on {res['latent_frames']} latent frames, batch 1, median of {res['train_repeats']}.", "",
             "| DiT width x depth | parameters | streaming frames/s (20 s memory) | chunk ms | meets 16 frames/s | "
             f"teacher step s ({res['latent_frames']} latents) | step cost vs first row |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for r in res["rows"]:
        lines.append(f"| {r['width']} x {r['depth']} | {r['params'] / 1e6:.2f}M | {r['frames_per_s']:.1f} | "
                     f"{r['chunk_latency_ms_median']:.0f} | {'yes' if r['frames_per_s'] >= 16 else 'no'} | "
                     f"{r['teacher_step_s']:.2f} | {r['teacher_step_s'] / base['teacher_step_s']:.2f}x |")
    lines += ["", "Read with the recipe's training wall times (relic_model/checkpoints/relic_tiny/provenance.json): "
              "stages 2-4 scale with the step cost column, stage 1 (the autoencoder) does not change."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "relic_model/configs/bundled.yaml"))
    ap.add_argument("--sizes", default="128x4,192x6,256x6,256x8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--latent-frames", type=int, default=40)
    ap.add_argument("--train-repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "reports/perf_dit_size.md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = load_config(args.config)
    load0 = os.getloadavg()[0]
    rows = []
    for width, depth in parse_sizes(args.sizes):
        cfg = sized(base, width, depth)
        torch.manual_seed(args.seed)
        dit, ae, text = (m.eval() for m in build_models(cfg))
        row = {"width": width, "depth": depth, "heads": width // 32,
               "params": sum(p.numel() for p in dit.parameters())}
        row.update(streaming_fps(cfg, dit, ae, text, args.chunks, args.seed))
        row["teacher_step_s"] = teacher_step_s(cfg, dit, args.latent_frames, args.train_repeats, args.seed)
        rows.append(row)
        print(f"[dit size] {width}x{depth}: {row['params'] / 1e6:.2f}M params, {row['frames_per_s']:.1f} frames/s, "
              f"teacher step {row['teacher_step_s']:.2f} s", flush=True)
    res = {"config": base.name, "config_path": os.path.relpath(args.config, ROOT), "resolution": [base.data.width, base.data.height],
           "threads": args.threads, "chunks": args.chunks, "latent_frames": args.latent_frames,
           "train_repeats": args.train_repeats, "torch": torch.__version__, "machine": platform.machine(),
           "cpu_count": os.cpu_count(), "loadavg_before": load0, "loadavg_after": os.getloadavg()[0], "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, markdown(res))
    atomic_write_text(out.with_suffix(".json"), json.dumps(res, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
