"""Does the model keep the first view? Still-shot probe: static actions from a held-out first frame.

For each first frame (by default the ``first_frame.png`` of every task of a benchmark suite: scenes
the model never trained on) and each *variant* the streaming generator is run with ``static``
actions for ``frames`` frames (default 48 = 3 s at 16 fps) and every generated frame ``t`` is
scored with

- ``psnr_f0[t]``  = PSNR(generated frame t, frame 0)            (what the issue's bar compares)
- ``psnr_rec[t]`` = PSNR(generated frame t, AE reconstruction of frame 0)
- ``lat_rmse[t]`` = RMS difference between generated latent j and latent 0 (normalised latent units;
  a perfectly kept still shot still differs here because latent 0 comes from the first-frame head
  and later latents from the group head, so ``ae_still``'s value is the reference)

plus the autoencoder's own numbers: ``ae_rec`` = PSNR(AE(frame 0), frame 0) (the bar's reference:
every generated frame must stay within 3 dB of it) and ``ae_still`` = a still clip (frame 0 repeated)
encoded and decoded, i.e. what a model that produced the exactly right latents would show.

Variants (all from the same checkpoint and seed):

- ``mem``            : the benchmark's ``relic`` (window + compressed memory; frame 0 is memory
                       index 0, so schedule S[0] = 1 keeps it uncompressed);
- ``nomem``          : ``relic-nomem`` (frames that leave the window are dropped, frame 0 too);
- ``mem_f0_pooled``  : memory with frame 0 compressed (S[0] := 4);
- ``mem_all_full``   : memory with every frame uncompressed (S = [1]);
- ``mem_h15``        : memory read with ``memory.read_horizon = 15`` (memory keys re-positioned
                       within the frame distances the bundled student was trained on);
- ``mem_capN``       : (on request) the same with ``read_horizon_mode: cap`` (distances beyond N
                       read at N, nearer ones unchanged);
- ``teacher``        : (with ``--teacher``) the bidirectional teacher's ODE sample of the same clip.
- ``sens``           : (always) first-frame sensitivity: the ``mem`` variant run with frame 0 of
                       another scene, same seed; ``sens_db`` = PSNR between the two generated
                       videos' frame ``t`` (high = the generation ignores frame 0).

Command (the report's numbers)::

    python -m benchmark.probes.still_shot --suite SUITE_DIR [--checkpoint DIR] \
        [--teacher RUN/teacher/final/model.safetensors] --out reports/diagnosis_still_shot.md
"""
from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path

import numpy as np
import torch

from benchmark.tasks.io import load_suite
from datagen.atomic import atomic_write_text
from relic_model.config import load_config
from relic_model.inference.checkpoint import load_checkpoint
from relic_model.inference.streaming import STATIC_ROW, StreamingGenerator, to_model_image, to_uint8_frames
from relic_model.inference.teacher import load_teacher
from relic_model.nn.control import integrate_actions, latent_controls
from relic_model.pipelines.teacher_sampling import sample_ode

VARIANTS = ("mem", "nomem", "mem_f0_pooled", "mem_all_full", "mem_h15")


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (peak 255)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def static_actions(n: int) -> np.ndarray:
    return np.tile(STATIC_ROW, (n, 1)).astype(np.float32)


@torch.no_grad()
def ae_reference(ae, cfg, frame: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """(AE(frame 0) uint8, AE(still clip of 1 + frames frames) uint8 (1 + frames, H, W, 3), latents
    of that still clip (1, F, C, h, w))."""
    img = to_model_image(frame, cfg.data.height, cfg.data.width)
    rec0 = to_uint8_frames(ae.decode(ae.encode(img[None, None]))[0], frame.shape[:2])[0]
    tf = cfg.autoencoder.temporal_factor
    T = 1 + tf * ((frames + tf - 1) // tf)
    clip = img[None, None].expand(1, T, *img.shape).contiguous()
    z = ae.encode(clip)
    still = to_uint8_frames(ae.decode(z)[0], frame.shape[:2])[:1 + frames]
    return rec0, still, z


def variant_cfg(cfg, variant: str):
    """(config copy, memory flag) for a named variant."""
    c = copy.deepcopy(cfg)
    if variant in ("mem", "sens"):
        return c, True
    if variant == "nomem":
        return c, False
    if variant == "mem_f0_pooled":
        s = list(c.memory.schedule)
        s[0] = max(4, max(s))
        c.memory.schedule = s
        return c, True
    if variant == "mem_all_full":
        c.memory.schedule = [1]
        return c, True
    if variant.startswith("mem_cap"):
        c.memory.read_horizon, c.memory.read_horizon_mode = int(variant[len("mem_cap"):]), "cap"
        return c, True
    if variant.startswith("mem_h"):
        c.memory.read_horizon = int(variant[len("mem_h"):])
        return c, True
    raise ValueError(f"unknown variant {variant!r}")


@torch.no_grad()
def student_still(dit, ae, text, cfg, frame: np.ndarray, prompt: str, frames: int, memory: bool,
                  seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """uint8 (frames, H, W, 3) generated with static actions and the latents (1, F, C, h, w) incl. latent 0."""
    saved = dit.cfg          # the KV cache takes its window/schedule from the model's config
    dit.cfg = cfg
    try:
        gen = StreamingGenerator(dit, ae, text, cfg, memory=memory)
        gen.reset(frame, prompt, seed=seed)
        out = gen.step(static_actions(frames))
    finally:
        dit.cfg = saved
    return out, torch.cat(gen.latents, 1)


@torch.no_grad()
def teacher_still(teacher, ae, text, cfg, frame: np.ndarray, prompt: str, frames: int, steps: int = 16,
                  seed: int = 0, guidance: float = 1.0) -> tuple[np.ndarray, torch.Tensor]:
    """The bidirectional teacher's ODE sample of a still clip (frames after frame 0, latents);
    ``guidance`` > 1: classifier-free guidance against the empty prompt (as the DMD real score)."""
    tf = cfg.autoencoder.temporal_factor
    n_act = tf * ((frames + tf - 1) // tf)
    acts = static_actions(n_act)
    z0 = ae.encode(to_model_image(frame, cfg.data.height, cfg.data.width)[None, None])
    c2w = np.concatenate([np.eye(4)[None], integrate_actions(acts, 1.0, np.eye(4))])
    a_lat, p_lat = latent_controls(acts, c2w[:, :3, :4].reshape(n_act + 1, 12), tf)
    a_lat, p_lat = torch.from_numpy(a_lat)[None], torch.from_numpy(p_lat)[None]
    t = text.encode_text([prompt])
    noise = torch.randn((1, a_lat.shape[1] - 1, *z0.shape[2:]), generator=torch.Generator().manual_seed(seed))
    t_null = text.encode_text([""])

    def vel(x, s):
        v = teacher(x, s, t, a_lat, p_lat, "bidirectional")
        if guidance != 1.0:
            vu = teacher(x, s, t_null, a_lat, p_lat, "bidirectional")
            v = vu + guidance * (v - vu)
        return v
    x, _ = sample_ode(vel, noise, z0, num_steps=steps)
    out = to_uint8_frames(ae.decode(x)[0], frame.shape[:2])
    return out[1:1 + frames], x


def score(video: np.ndarray, latents: torch.Tensor, frame0: np.ndarray, rec0: np.ndarray, z_ref: torch.Tensor) -> dict:
    """Per-frame PSNRs (lists) and per-latent RMSE to latent 0 of ``z_ref``."""
    return {"psnr_f0": [psnr_u8(f, frame0) for f in video],
            "psnr_rec": [psnr_u8(f, rec0) for f in video],
            "lat_rmse": [float((latents[0, j] - z_ref[0, 0]).pow(2).mean().sqrt()) for j in range(1, latents.shape[1])]}


def probe(frames_in: list[tuple[str, np.ndarray, str]], checkpoint=None, teacher_weights=None, frames: int = 48,
          seed: int = 0, variants=VARIANTS, progress: bool = True, teacher_steps: int = 16,
          teacher_guidance: float = 1.0) -> list[dict]:
    """One row per (image, variant): ``ae_rec``, per-frame lists and their summaries."""
    cfg, dit, ae, text = load_checkpoint(checkpoint, "cpu")
    teacher = teacher_text = None
    if teacher_weights:
        tc = Path(teacher_weights).parent / "config.yaml"      # the teacher run's own network config
        teacher, teacher_text = load_teacher(teacher_weights, load_config(tc) if tc.is_file() else cfg, text)
    rows = []
    for k, (name, f0, prompt) in enumerate(frames_in):
        rec0, still, z_still = ae_reference(ae, cfg, f0, frames)
        ae_rec = psnr_u8(rec0, f0)
        base = {"image": name, "ae_rec": ae_rec}
        s = score(still[1:], z_still, f0, rec0, z_still)
        rows.append({**base, "variant": "ae_still", **s})
        vids = {}
        for v in variants:
            c, mem = variant_cfg(cfg, v)
            vid, lat = student_still(dit, ae, text, c, f0, prompt, frames, mem, seed)
            vids[v] = vid
            rows.append({**base, "variant": v, **score(vid, lat, f0, rec0, z_still)})
        if teacher is not None:
            vid, lat = teacher_still(teacher, ae, teacher_text, cfg, f0, prompt, frames, teacher_steps, seed,
                                     teacher_guidance)
            rows.append({**base, "variant": "teacher", **score(vid, lat, f0, rec0, z_still)})
        # first-frame sensitivity: same seed, frame 0 of the next image
        other = frames_in[(k + 1) % len(frames_in)][1]
        if other is not f0 and "mem" in vids:
            vid_o, _ = student_still(dit, ae, text, cfg, other, prompt, frames, True, seed)
            rows.append({**base, "variant": "sens", "psnr_f0": [psnr_u8(a, b) for a, b in zip(vids["mem"], vid_o)],
                         "psnr_rec": [psnr_u8(other, f0)] * len(vid_o), "lat_rmse": []})
        if progress:
            print(f"[{k + 1}/{len(frames_in)}] {name}: ae_rec {ae_rec:.2f} dB; " + ", ".join(
                f"{r['variant']} {np.mean(r['psnr_f0']):.2f}" for r in rows if r["image"] == name), flush=True)
    for r in rows:
        p = np.asarray(r["psnr_f0"])
        r["mean_f0"], r["min_f0"] = float(p.mean()), float(p.min())
        r["f1"], r["f4"], r["f16"], r["f_last"] = (float(p[i]) for i in (0, min(3, len(p) - 1), min(15, len(p) - 1), -1))
        r["mean_rec"] = float(np.mean(r["psnr_rec"]))
        r["gap_min"] = r["ae_rec"] - r["min_f0"]   # bar: <= 3 dB
        r["mean_lat_rmse"] = float(np.mean(r["lat_rmse"])) if r["lat_rmse"] else float("nan")
    return rows


def suite_first_frames(suite_dir) -> list[tuple[str, np.ndarray, str]]:
    """(task id, first frame uint8, prompt) of every task of a benchmark suite."""
    out = []
    for t in load_suite(suite_dir).tasks:
        f = t.gt_frames()[0]
        out.append((t.task_id, np.ascontiguousarray(f), t.prompt))
        t.release()
    return out


def summary_table(rows: list[dict]) -> str:
    import pandas as pd
    df = pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, list)} for r in rows])
    cols = ["ae_rec", "f1", "f4", "f16", "f_last", "mean_f0", "min_f0", "gap_min", "mean_rec", "mean_lat_rmse"]
    g = df.groupby("variant", sort=False)[cols].mean()
    lines = ["| variant | AE rec (dB) | f1 | f4 | f16 | last | mean | min | AE rec - min (bar <= 3) | vs AE rec | latent RMSE |",
             "|---|" + "---:|" * len(cols)]
    for v, r in g.iterrows():
        lines.append(f"| {v} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", required=True, help="benchmark suite directory (first frames of its tasks)")
    p.add_argument("--checkpoint", default=None, help="checkpoint directory (default: bundled)")
    p.add_argument("--teacher", default=None, help="teacher stage weights (adds the 'teacher' variant)")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--teacher-steps", type=int, default=16, help="Euler steps of the teacher ODE")
    p.add_argument("--teacher-guidance", type=float, default=1.0, help="CFG scale of the teacher (1 = none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="Markdown table (a .json of the per-frame rows beside it)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    imgs = suite_first_frames(a.suite)
    rows = probe(imgs, a.checkpoint, a.teacher, a.frames, a.seed, tuple(v for v in a.variants.split(",") if v),
                 teacher_steps=a.teacher_steps, teacher_guidance=a.teacher_guidance)
    table = summary_table(rows)
    print(table)
    if a.out:
        import json
        out = Path(a.out)
        atomic_write_text(out.with_suffix(".json"), json.dumps(rows, indent=0))
        atomic_write_text(out, table + "\n")
        print(f"wrote {out} (load average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
