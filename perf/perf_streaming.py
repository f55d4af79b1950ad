"""RELIC streaming speed and memory-scaling bars (results -> reports/perf_streaming.{md,json} and
reports/latency_vs_history.png).

Measured on this machine's CPU with ``torch.set_num_threads(2)`` and ``torch.inference_mode``:

1. Real-time bar: the tiny config at its resolution (112x64) streams 20 s of video (80 latent
   frames) for real, then the next ``--chunks`` chunks are timed. A chunk = 4 video frames = one
   block: 4 denoising steps + the cache-update pass (+ the clean memory-only pass when the config
   streams with ``sampling.context_scope: window`` and context noise) + streaming decode to uint8.
   Bar: >= 16 generated frames/s, i.e. median chunk latency < 250 ms.
2. Scaling (``--repeats`` passes, each over every setting in turn): for histories of 5, 20, 60, 120 s the cache is prefilled with that many latent frames
   (random K/V of the right shapes committed through the cache's own plan/commit, so the
   compressed branch is built by the real pooling code; attention cost does not depend on the
   values), then ``--chunks`` chunks are generated and timed for
   - compressed: the paper's two-branch cache (window w + schedule S),
   - uncompressed: the same full history with schedule [1] (no downsampling),
   - window-only: the no-memory ablation (memory=False), for reference.
   Bars: KV tokens held, compressed vs uncompressed, >= 3.5x fewer from 20 s on; median chunk
   latency at 60 s compressed <= 0.5 x uncompressed at 60 s.

Weights are random (seeded) unless ``--checkpoint`` is given: speed does not depend on them.
Run: ``python perf/perf_streaming.py`` (about 1-2 minutes on a quiet 2-core CPU). The
script sets ``OMP_WAIT_POLICY=PASSIVE`` (unless already set) before importing torch: on a shared
CPU, spinning OpenMP workers otherwise make 2-thread inference 10-100x slower.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This CPU is shared: busy-waiting OpenMP threads (the default wait policy) collapse 2-thread
# throughput by 10-100x whenever another process holds a core. PASSIVE (threads sleep while
# waiting) must be set before torch loads libgomp; it changes nothing on an idle machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from relic_model.config import load_config  # noqa: E402
from relic_model.inference.checkpoint import build_models, load_checkpoint  # noqa: E402
from relic_model.inference.streaming import StreamingGenerator  # noqa: E402
from relic_model.nn.memory import history_token_counts, latent_frames_for_seconds  # noqa: E402
from datagen.atomic import atomic_write_bytes  # noqa: E402


def walk_actions(n: int, seed: int) -> np.ndarray:
    """A seeded mixed walk: forward motion with slow panning (datagen action channels)."""
    rng = np.random.default_rng(seed)
    a = np.zeros((n, 13), np.float32)
    a[:, 0] = 0.5 + 0.5 * rng.random(n)
    a[:, 8 + (np.arange(n) // 32) % 2] = 3.75 * rng.random(n)
    return a


def prefill(gen: StreamingGenerator, num_frames: int, seed: int) -> None:
    """Commit latent frames 1..num_frames-1 with random K/V (shape-exact) through the cache."""
    c = gen.cache
    blk = gen.model.blocks[0].attn
    heads, hd = blk.heads, gen.model.dim // blk.heads
    g = torch.Generator().manual_seed(seed)
    n = c.tokens_per_frame
    while c.num_frames < num_frames:
        f = c.num_frames
        plan = c.plan([f])
        for layer in range(c.depth):
            k = torch.randn(1, heads, n, hd, generator=g)
            c.commit(layer, k, torch.randn(1, heads, n, hd, generator=g), plan)
        c.finish(plan)


def time_chunks(gen: StreamingGenerator, actions: np.ndarray, chunks: int, warmup: int = 1) -> list[float]:
    """Seconds per 4-frame chunk (step = denoise + cache update + decode), ``chunks`` timed."""
    k = gen.frames_per_block
    for i in range(warmup):
        gen.step(actions[i * k:(i + 1) * k], 1.0)
    out = []
    for i in range(warmup, warmup + chunks):
        t = time.perf_counter()
        frames = gen.step(actions[i * k:(i + 1) * k], 1.0)
        out.append(time.perf_counter() - t)
        assert frames.shape[0] == k
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--histories", default="5,20,60,120", help="seconds of history, comma-separated")
    ap.add_argument("--chunks", type=int, default=8, help="timed chunks per setting and pass")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved passes over all scaling settings")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for every bar")
    ap.add_argument("--also-threads", type=lambda t: [int(x) for x in t.split(",") if x], default=[1],
                    help="extra thread counts for the real-time measurement (reported, not a bar)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "reports"))
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.checkpoint:
        cfg, dit, ae, text = load_checkpoint(args.checkpoint)
        weights = f"checkpoint {args.checkpoint}"
    else:
        cfg = load_config(args.config)
        dit, ae, text = (m.eval() for m in build_models(cfg))
        weights = f"random init (seed {args.seed}), config {args.config}"
    H, W, fps = cfg.data.height, cfg.data.width, cfg.data.fps
    rng = np.random.default_rng(args.seed)
    img = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    prompt = "a quiet street with brick houses and trees"
    load0 = os.getloadavg()
    results: dict = {"config": cfg.name, "weights": weights, "resolution": [W, H], "fps_video": fps,
                     "threads": args.threads, "torch": torch.__version__, "machine": platform.machine(),
                     "cpu_count": os.cpu_count(), "window": cfg.memory.window,
                     "schedule": list(cfg.memory.schedule), "sigmas": list(cfg.sampling.sigmas),
                     "context": {"sigma": float(cfg.sampling.context_sigma), "scope": str(cfg.sampling.context_scope)},
                     "decoder": cfg.autoencoder.streaming_decoder,
                     "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}

    with torch.inference_mode():
        # ---- 1. real streaming up to 20 s, then timed chunks (bar: --threads; extra thread
        # counts from --also-threads are reported for reference only)
        f20 = latent_frames_for_seconds(20, fps, cfg.autoencoder.temporal_factor)
        acts = walk_actions(4 * (f20 + args.chunks + 2), args.seed)
        by_threads = {}
        for nt in [args.threads] + [t for t in args.also_threads if t != args.threads]:
            torch.set_num_threads(nt)
            gen = StreamingGenerator(dit, ae, text, cfg, memory=True)
            gen.reset(img, prompt, None, seed=args.seed)
            t0 = time.perf_counter()
            gen.step(acts[:4 * (f20 - 1)], 1.0)
            stream_20 = time.perf_counter() - t0
            lat = time_chunks(gen, acts[4 * (f20 - 1):], args.chunks)
            med = statistics.median(lat)
            by_threads[nt] = {
                "threads": nt, "history_s_at_start": 20, "history_latent_frames": f20, "timed_chunks": len(lat),
                "chunk_latency_ms_median": 1000 * med, "chunk_latency_ms_mean": 1000 * statistics.mean(lat),
                "chunk_latency_ms_max": 1000 * max(lat), "chunk_latency_ms_min": 1000 * min(lat),
                "frames_per_s": gen.frames_per_block / med, "frames_per_s_at_min_latency": gen.frames_per_block / min(lat),
                "first_20s_wall_s": stream_20, "first_20s_frames_per_s": 4 * (f20 - 1) / stream_20,
                "kv_tokens_held": gen.cache.token_counts()["held"], "loadavg_1min": os.getloadavg()[0]}
            print(f"[realtime] {nt} thread(s), 20 s history: {1000 * med:.1f} ms/chunk -> "
                  f"{gen.frames_per_block / med:.1f} frames/s")
        results["realtime"] = by_threads[args.threads]
        results["realtime_other_threads"] = [v for k, v in by_threads.items() if k != args.threads]
        torch.set_num_threads(args.threads)

        # ---- 2. scaling
        modes = {"compressed": dict(memory=True, schedule=None), "uncompressed": dict(memory=True, schedule=[1]),
                 "window_only": dict(memory=False, schedule=None)}
        rows = []
        hist = [float(h) for h in args.histories.split(",")]
        settings = [(h, mode) for h in hist for mode in modes]
        lats: dict = {st: [] for st in settings}
        tokens: dict = {}
        # passes interleave every setting, so load bursts from other processes on this shared
        # machine spread over all settings instead of hitting one
        from tqdm import tqdm
        bar = tqdm(total=args.repeats * len(settings), desc="scaling settings", unit="setting")
        for rep in range(args.repeats):
            for h, mode in settings:
                bar.update(1)
                kw = modes[mode]
                nf = latent_frames_for_seconds(h, fps, cfg.autoencoder.temporal_factor)
                gen = StreamingGenerator(dit, ae, text, cfg, memory=kw["memory"])
                gen.reset(img, prompt, None, seed=args.seed)
                if kw["schedule"] is not None:
                    gen.cache.schedule = list(kw["schedule"])
                prefill(gen, nf, args.seed + 1)
                tokens[(h, mode)] = (nf, gen.cache.token_counts())
                lats[(h, mode)] += time_chunks(gen, walk_actions(4 * (args.chunks + 2), args.seed), args.chunks)
        bar.close()
        for h, mode in settings:
            nf, tc = tokens[(h, mode)]
            lat = lats[(h, mode)]
            row = {"history_s": h, "latent_frames": nf, "mode": mode, "kv_tokens_held": tc["held"],
                   "kv_tokens_uncompressed": tc["uncompressed"], "timed_chunks": len(lat),
                   "chunk_latency_ms_median": 1000 * statistics.median(lat),
                   "chunk_latency_ms_mean": 1000 * statistics.mean(lat),
                   "chunk_latency_ms_min": 1000 * min(lat),
                   "frames_per_s": gen.frames_per_block / statistics.median(lat)}
            rows.append(row)
            print(f"[scaling] {h:5.0f} s {mode:12s} tokens {tc['held']:6d}  {row['chunk_latency_ms_median']:7.1f} ms/chunk")
    results["scaling"] = rows
    results["token_counts_analytic"] = {f"{s}s": history_token_counts(s, cfg) for s in (20, 60)}
    results["loadavg_before"] = list(load0)
    results["loadavg_after"] = list(os.getloadavg())

    def get(h, mode, key):
        return next(r[key] for r in rows if r["history_s"] == h and r["mode"] == mode)
    bars = {"realtime_fps_ge_16": results["realtime"]["frames_per_s"] >= 16.0}
    for h in hist:
        if h >= 20:
            ratio = get(h, "uncompressed", "kv_tokens_held") / get(h, "compressed", "kv_tokens_held")
            results.setdefault("token_ratio", {})[f"{h:g}s"] = ratio
            bars[f"token_ratio_ge_3.5_at_{h:g}s"] = ratio >= 3.5
    if 60.0 in hist:
        lr = get(60.0, "compressed", "chunk_latency_ms_median") / get(60.0, "uncompressed", "chunk_latency_ms_median")
        results["latency_ratio_60s"] = lr
        bars["latency_60s_compressed_le_half_uncompressed"] = lr <= 0.5
    results["bars"] = bars
    results["all_bars_pass"] = all(bars.values())

    out = Path(args.out)
    atomic_write_bytes(out / "perf_streaming.json", json.dumps(results, indent=2).encode())
    _plot(rows, hist, out / "latency_vs_history.png", results)
    atomic_write_bytes(out / "perf_streaming.md", _markdown(results, rows, hist).encode())
    print(json.dumps(bars, indent=1))
    return 0 if results["all_bars_pass"] else 1


def _plot(rows, hist, path: Path, results) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    styles = {"compressed": "o-", "uncompressed": "s-", "window_only": "^--"}
    for mode, st in styles.items():
        xs = [r["history_s"] for r in rows if r["mode"] == mode]
        a1.plot(xs, [r["chunk_latency_ms_median"] for r in rows if r["mode"] == mode], st, label=mode)
        a2.plot(xs, [r["kv_tokens_held"] for r in rows if r["mode"] == mode], st, label=mode)
    a1.axhline(250, color="gray", lw=0.8, ls=":", label="250 ms = 16 frames/s")
    a1.set_xlabel("history in cache (s of video at 16 fps)")
    a1.set_ylabel("median latency per 4-frame chunk (ms)")
    a1.set_title(f"RELIC {results['config']} {results['resolution'][0]}x{results['resolution'][1]}, "
                 f"{results['threads']} threads")
    a2.set_xlabel("history in cache (s)")
    a2.set_ylabel("KV tokens per layer")
    a2.set_yscale("log")
    a2.set_title("KV tokens held")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def memory_pass_note(res) -> str:
    """The extra clean pass a chunk runs when the config noises only the window's context."""
    c = res.get("context") or {}
    if c.get("sigma", 0) > 0 and c.get("scope") == "window":
        return f" + 1 clean memory-only pass (context noise {c['sigma']} on the window only)"
    return ""


def _markdown(res, rows, hist) -> str:
    rt = res["realtime"]
    L = ["# RELIC streaming speed and memory scaling", "",
         "Produced by `python perf/perf_streaming.py` (see its docstring for the method).", "",
         f"- config `{res['config']}` at {res['resolution'][0]}x{res['resolution'][1]}, weights: {res['weights']}",
         f"- torch {res['torch']}, {res['threads']} threads (OMP_WAIT_POLICY={res['omp_wait_policy']}), "
         f"inference_mode, {res['cpu_count']} CPUs; "
         f"load average before/after: {', '.join(f'{x:.2f}' for x in res['loadavg_before'])} / "
         f"{', '.join(f'{x:.2f}' for x in res['loadavg_after'])} (the machine is shared: higher load = slower)",
         f"- chunk = 4 video frames = 1 latent frame: {len(res['sigmas'])} denoising steps (sigmas {res['sigmas']}) "
         f"+ 1 cache-update pass{memory_pass_note(res)} + `{res['decoder']}` streaming decoder to uint8",
         f"- cache: window {res['window']} latent frames, schedule S = {res['schedule']}", "",
         f"## Real-time bar ({res['threads']} threads, 20 s of real streamed history in the cache)", "",
         f"- median chunk latency **{rt['chunk_latency_ms_median']:.1f} ms** (mean {rt['chunk_latency_ms_mean']:.1f}, "
         f"min {rt['chunk_latency_ms_min']:.1f}, max {rt['chunk_latency_ms_max']:.1f}) over {rt['timed_chunks']} chunks -> "
         f"**{rt['frames_per_s']:.1f} generated frames/s** (bar >= 16)",
         f"- KV tokens held per layer at that point: {rt['kv_tokens_held']}; the first 20 s streamed at "
         f"{rt['first_20s_frames_per_s']:.1f} frames/s; 1-min load average {rt['loadavg_1min']:.2f}"]
    for o in res.get("realtime_other_threads", []):
        L.append(f"- for reference (not the bar), {o['threads']} thread(s): median {o['chunk_latency_ms_median']:.1f} ms "
                 f"-> {o['frames_per_s']:.1f} frames/s (1-min load {o['loadavg_1min']:.2f})")
    L += ["",
         "## Memory scaling (cache prefilled to the history, then chunks timed)", "",
         "| history (s) | latent frames | mode | KV tokens held | median ms/chunk | min ms/chunk | frames/s (median) |",
         "|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        L.append(f"| {r['history_s']:g} | {r['latent_frames']} | {r['mode']} | {r['kv_tokens_held']} | "
                 f"{r['chunk_latency_ms_median']:.1f} | {r['chunk_latency_ms_min']:.1f} | {r['frames_per_s']:.1f} |")
    L += ["", "Token ratio uncompressed / compressed: " +
          ", ".join(f"{k}: **{v:.2f}x**" for k, v in res.get("token_ratio", {}).items())]
    if "latency_ratio_60s" in res:
        L.append(f"Latency at 60 s, compressed / uncompressed: **{res['latency_ratio_60s']:.2f}** (bar <= 0.5)")
    L += ["", "Analytic token counts (`relic_model.nn.memory.history_token_counts`):", ""]
    for k, v in res["token_counts_analytic"].items():
        L.append(f"- {k}: {v['frames']} latent frames, held {v['held']} (window {v['window_tokens']} + memory "
                 f"{v['memory_tokens']}) vs uncompressed {v['uncompressed']} -> {v['ratio']:.2f}x fewer")
    L += ["", "## Bars", ""] + [f"- {k}: {'PASS' if v else 'FAIL'}" for k, v in res["bars"].items()]
    L += ["", "![latency vs history](latency_vs_history.png)", ""]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
