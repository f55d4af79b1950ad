"""Stage 1: the causal video autoencoder, trained on corpus clips.

Loss per step (video ``v`` (B, T, 3, H, W) in [-1, 1], T = 1 + tf (n - 1)):

    l1_weight * |dec(enc(v)) - v| + mse_weight * (dec(enc(v)) - v)^2          (main decoder)
  + fast_weight * (same two terms for the fast streaming decoder on DETACHED latents)
  + latent_reg * mean(raw latents^2)

(means over all pixels). At the end the per-channel latent mean/std over ``stats_clips`` clips are
stored in the autoencoder (``set_latent_stats``) so ``encode`` returns ~unit-variance latents for
the diffusion stages. Sample: top rows ground truth, bottom rows reconstruction.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from relic_model.data.controls import num_video_frames
from relic_model.distributed import rank_slice
from relic_model.train.common import RunContext, SpikeGuard, build_autoencoder, clip_and_step, cosine_lr, np_rng
from relic_model.train.loop import Stage


class AutoencoderStage(Stage):
    name = "autoencoder"

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.s = ctx.settings.autoencoder
        self.ae = build_autoencoder(ctx.cfg).to(ctx.info.device)
        self.opt = torch.optim.AdamW(self.ae.parameters(), lr=self.s.lr, weight_decay=0.0)
        self.clips = ctx.clips(0.0)
        self.T = num_video_frames(self.s.clip_latents, ctx.cfg.autoencoder.temporal_factor)
        self.guard = SpikeGuard(self.s.spike_skip)

    def modules(self):
        return {"autoencoder": self.ae}

    def optimizers(self):
        return {"autoencoder": self.opt}

    def _video(self, step: int, indices) -> torch.Tensor:
        fr = [self.clips.sample(self.T, np_rng(self.ctx.seed, self.name, step, i)).frames for i in indices]
        v = torch.from_numpy(np.stack(fr)).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
        return v.to(self.ctx.info.device)

    def losses(self, video: torch.Tensor) -> tuple[torch.Tensor, dict]:
        ae = self.ae
        z_raw = ae.encode_raw(video)
        z = ae._norm(z_raw)
        rec = ae.decode(z)
        l1, mse = F.l1_loss(rec, video), F.mse_loss(rec, video)
        loss = self.s.l1_weight * l1 + self.s.mse_weight * mse + self.s.latent_reg * z_raw.pow(2).mean()
        out = {"l1": l1.item(), "mse": mse.item()}
        if self.s.fast_weight > 0:
            rf = ae.decode(z.detach(), fast=True)
            fl1, fmse = F.l1_loss(rf, video), F.mse_loss(rf, video)
            loss = loss + self.s.fast_weight * (self.s.l1_weight * fl1 + self.s.mse_weight * fmse)
            out.update(fast_l1=fl1.item(), fast_mse=fmse.item())
        with torch.no_grad():
            out["psnr"] = float(10 * torch.log10(4.0 / mse.clamp_min(1e-10)))
        out["loss"] = loss.item()
        return loss, out

    def train_step(self, step: int) -> dict:
        idx = range(self.s.batch)[rank_slice(self.s.batch, self.ctx.info)]
        video = self._video(step, idx)
        cosine_lr(self.opt, self.s.lr, step, self.s.warmup, self.s.decay_from, self.s.steps, self.s.lr_min,
                  self.s.lr_drop)
        loss, out = self.losses(video)
        loss.backward()
        if self.ctx.info.distributed:
            _all_reduce_grads(self.ae, self.ctx.info)
        out["grad_norm"] = clip_and_step(self.opt, self.ae.parameters(), self.s.grad_clip, self.guard)
        out["skipped"] = float(self.guard.skipped)
        return out

    def sample_video(self, step: int):
        v = self._video(10 ** 9, [0, 1])
        self.ae.eval()
        rec = self.ae.decode(self.ae.encode(v))
        self.ae.train()
        return torch.cat([v, rec], 0)

    def finish(self) -> None:
        """Set the latent normalisation statistics from ``stats_clips`` clips (deterministic
        clips, identical weights on every rank -> identical statistics everywhere)."""
        with torch.no_grad():
            zs = []
            for s in range(0, self.s.stats_clips, 4):
                zs.append(self.ae.encode_raw(self._video(10 ** 9 + 1, range(s, min(self.s.stats_clips, s + 4)))))
            z = torch.cat(zs).permute(2, 0, 1, 3, 4).reshape(self.ae.latent_channels, -1)
            self.ae.set_latent_stats(z.mean(1), z.std(1))

    def final_modules(self):
        self.finish()
        return {"autoencoder": self.ae}


def _all_reduce_grads(module, info) -> None:
    """Average gradients over ranks (the autoencoder's loss uses encode/decode separately, so it
    is synchronised explicitly instead of through a DDP forward)."""
    import torch.distributed as dist
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= info.world_size
