"""Decoder-only fine-tune of a RELIC checkpoint's autoencoder on multi-latent clips.

Why: stage 1 trains on clips of ``clip_latents`` latent frames (2 by default: the first-frame latent
and ONE group), so the decoder's group path only ever sees a first-frame latent as its causal
context. At inference every latent j >= 2 is decoded from [z_j, z_{j-1}] with a GROUP latent as
context, which it never saw: measured on the bundled checkpoint, autoencoding ground-truth smoke
videos gave frame-to-frame jumps of 38-44 grey levels at every group boundary (13.5 inside the
ground truth) and the pose estimator failed on 48-63% of the reconstructed ground-truth frames.

What: the encoder (and the latent normalisation) are frozen, so latents, and with them the
teacher/student DiT trained on them, are unchanged; the decoders (main and fast) are trained on clips
of ``clip_latents`` >= 3 latent frames with

    l1 + mse + temporal_weight * |diff_t(rec) - diff_t(video)|_1

(``diff_t``: difference of consecutive frames, across group boundaries included; means over
pixels; the fast decoder gets the same terms with weight ``fast_weight``). Clips are drawn from the
corpus's train split by ``numpy.random.default_rng([seed, step, i])``; AdamW, gradient clipping
at 1. The result is a new checkpoint directory (config unchanged) whose ``provenance.json`` is
the source's plus a ``decoder_finetune`` stage (steps, wall time, final losses = means over the
last 50 steps, settings).

    relic train finetune-decoder --checkpoint SRC --corpus DIR --out DST [--steps 1500]
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from datagen import Corpus
from datagen.atomic import atomic_write
from relic_model.data.clips import CorpusClips
from relic_model.data.controls import num_video_frames
from relic_model.inference.checkpoint import BUNDLED, load_checkpoint, save_checkpoint
from relic_model.nn.autoencoder import grow_decoder
from relic_model.train.common import cosine_lr


@dataclass
class DecoderFinetuneSettings:
    steps: int = 1500
    batch: int = 2
    clip_latents: int = 4        # latent frames per clip: 1 first-frame latent + 3 groups
    lr: float = 3e-4
    lr_min: float | None = None  # None: constant lr; else a cosine from lr to lr_min over the steps
    temporal_weight: float = 1.0
    fast_weight: float = 1.0     # 0: the fast decoder is not trained (a config streaming the full one)
    seed: int = 0
    decoder_res_blocks: int | None = None   # grow the full decoder to this many blocks per stage first
    state_every: int = 100       # steps between resumable state saves (OUT.state/)


def temporal_l1(rec: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
    """Mean |(rec_{t+1} - rec_t) - (video_{t+1} - video_t)| over (B, T, C, H, W) clips."""
    return F.l1_loss(rec[:, 1:] - rec[:, :-1], video[:, 1:] - video[:, :-1])


def _state_dir(out: Path) -> Path:
    return out.with_name(out.name + ".state")


def _save_state(out: Path, step: int, decoders, opt, hist, settings, wall_s: float) -> None:
    """Resumable state (decoder weights, optimizer, loss history, settings) in ``OUT.state/``,
    written to a temporary file and renamed."""
    d = _state_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    blob = {"step": step, "decoders": [m.state_dict() for m in decoders], "opt": opt.state_dict(),
            "hist": hist, "settings": asdict(settings), "wall_s": wall_s}
    atomic_write(d / "state.pt", lambda tmp: torch.save(blob, tmp))


def _load_state(out: Path, settings) -> dict | None:
    p = _state_dir(out) / "state.pt"
    if not p.is_file():
        return None
    blob = torch.load(p, map_location="cpu", weights_only=False)
    if blob["settings"] != asdict(settings):
        raise ValueError(f"{p} was written with other settings ({blob['settings']}); rerun with those or "
                         f"delete {_state_dir(out)} to start over")
    return blob


def finetune_decoder(src, corpus, out, settings: DecoderFinetuneSettings | None = None,
                     progress: bool = True, resume: bool = False) -> dict:
    """Fine-tune the decoders of checkpoint ``src`` on ``corpus`` and write checkpoint ``out``.
    Returns the ``decoder_finetune`` provenance entry.

    With ``decoder_res_blocks`` the full decoder is first grown to that many residual blocks per
    stage (:func:`relic_model.nn.autoencoder.grow_decoder`: identical output before training) and
    ``out``'s config records the new size. Every ``state_every`` steps the decoders, optimizer and
    losses are saved to ``OUT.state/``; ``resume`` continues from there (same settings required,
    same clips: each step's clips are seeded by the step) and the state is removed at the end."""
    from tqdm import tqdm

    s = settings or DecoderFinetuneSettings()
    if s.clip_latents < 3:
        raise ValueError(f"clip_latents must be >= 3 (two group latents, so a group is decoded with a group "
                         f"as context), got {s.clip_latents}")
    src = Path(src) if src is not None else BUNDLED
    out = Path(out)
    if out.resolve() == src.resolve():
        raise ValueError("--out must differ from --checkpoint (the source checkpoint is never overwritten)")
    torch.manual_seed(s.seed)
    cfg, dit, ae, text = load_checkpoint(src)
    if s.decoder_res_blocks is not None and s.decoder_res_blocks != cfg.autoencoder.decoder_res_blocks:
        ae, cfg = grow_decoder(ae, s.decoder_res_blocks)
    d = cfg.data
    clips = CorpusClips(corpus, "train", d.height, d.width, d.fps, 0.0)
    T = num_video_frames(s.clip_latents, cfg.autoencoder.temporal_factor)
    if clips.max_clip_frames() < T:
        raise ValueError(f"corpus {corpus}: no train episode has {T} frames at {d.fps} fps "
                         f"(clip_latents={s.clip_latents}); lower --clip-latents")
    for p in ae.parameters():
        p.requires_grad_(False)
    decoders = (ae.decoder, ae.fast_decoder) if s.fast_weight > 0 else (ae.decoder,)
    params = [p for m in decoders for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    enc_before = {k: v.clone() for k, v in ae.state_dict().items() if not k.startswith(("decoder.", "fast_decoder."))}
    ae.train()
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=0.0)
    hist: list[dict] = []
    start, wall_before = 0, 0.0
    blob = _load_state(out, s) if resume else None
    if blob is not None:
        for m, sd in zip(decoders, blob["decoders"]):
            m.load_state_dict(sd)
        opt.load_state_dict(blob["opt"])
        start, hist = int(blob["step"]), list(blob["hist"])
        wall_before = float(blob.get("wall_s", 0.0))
    t0 = time.perf_counter()
    for step in tqdm(range(start, s.steps), desc="decoder fine-tune", disable=not progress, initial=start,
                     total=s.steps):
        if s.lr_min is not None:
            cosine_lr(opt, s.lr, step, 0, 0, s.steps, s.lr_min)
        fr = [clips.sample(T, np.random.default_rng([s.seed, step, i])).frames for i in range(s.batch)]
        v = torch.from_numpy(np.stack(fr)).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
        with torch.no_grad():
            z = ae.encode(v)
        rec = ae.decode(z)
        l1, mse, tl = F.l1_loss(rec, v), F.mse_loss(rec, v), temporal_l1(rec, v)
        loss = l1 + mse + s.temporal_weight * tl
        row = {"l1": l1.item(), "mse": mse.item(), "temporal_l1": tl.item()}
        if s.fast_weight > 0:
            rf = ae.decode(z, fast=True)
            fl = F.l1_loss(rf, v) + F.mse_loss(rf, v) + s.temporal_weight * temporal_l1(rf, v)
            loss = loss + s.fast_weight * fl
            row["fast_loss"] = fl.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        row["psnr"] = float(10 * np.log10(4.0 / max(row["mse"], 1e-10)))
        row["loss"] = loss.item()
        hist.append(row)
        if s.state_every > 0 and (step + 1) % s.state_every == 0 and step + 1 < s.steps:
            _save_state(out, step + 1, decoders, opt, hist, s, time.perf_counter() - t0 + wall_before)
    ae.eval()
    for k, v in ae.state_dict().items():  # the latent space is untouched (the DiT depends on it)
        if k in enc_before and not torch.equal(v, enc_before[k]):
            raise RuntimeError(f"decoder fine-tune changed encoder tensor {k}")
    wall = time.perf_counter() - t0 + wall_before
    last = hist[-50:]
    entry = {"steps": s.steps, "wall_time_s": round(wall, 2),
             "final_losses": {k: float(np.mean([h[k] for h in last])) for k in last[0]},
             "settings": asdict(s), "source_checkpoint": _shown(src),
             "corpus_config_hash": str(Corpus.open(corpus).header.get("config_hash", ""))}
    save_checkpoint(out, cfg, dit, ae, text)
    prov_src = src / "provenance.json"
    prov = json.loads(prov_src.read_text()) if prov_src.exists() else {}
    prov.setdefault("stages", {})["decoder_finetune"] = entry
    atomic_write(out / "provenance.json", lambda tmp: Path(tmp).write_text(json.dumps(prov, indent=1)))
    shutil.rmtree(_state_dir(out), ignore_errors=True)
    return entry


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when inside it (no machine-specific prefixes)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


__all__ = ["DecoderFinetuneSettings", "finetune_decoder", "temporal_l1"]
