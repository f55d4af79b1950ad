"""Causal video autoencoder (8x spatial, 4x temporal by default) with a streaming decoder.

Temporal layout (like Wan's causal VAE): a clip of T frames becomes F = 1 + (T - 1) // tf latent
frames: latent 0 encodes frame 0 alone, latent j >= 1 encodes frames 1 + tf (j-1) .. tf j
(``tf`` = temporal_factor). Trailing frames that do not fill a group are ignored by ``encode``.

- Encoder: a per-frame 2-D conv stack (one stride-2 stage per factor of two) to (c, H/f, W/f),
  then a "first" head (frame 0) or a "group" head (the tf frames of a group, channel-concatenated)
  to C latent channels. Latent j depends on its own frames only: causal. With
  ``autoencoder.first_frame: replicate`` there is no first head: latent 0 is the group head applied
  to frame 0 repeated tf times (Wan's replicate padding), so latent 0 and the latents of a still
  clip are identical and the DiT can keep a still view by copying latent 0. (With the "head"
  layout the two live in unrelated coordinates: the bundled autoencoder's latent 0 differs from a
  still group's latent by RMSE 1.5 in unit-variance latent units, and copying it decodes to
  ~11 dB; see reports/diagnosis_still_shot.md.)
- Decoder (:class:`CausalDecoder`): latent j is decoded from [z_j, z_{j-1}] (z_{-1} = 0) into 1
  frame (j = 0) or tf frames (j >= 1); the only state carried between calls is the previous
  latent and the count of decoded latents (``decode_chunk``'s causal cache), so streaming decoding
  is exactly the same as decoding the whole clip at once.
- ``autoencoder.decoder_res_blocks`` residual blocks per decoder stage (main decoder only; 1 =
  the original layout). :func:`grow_decoder` turns a trained autoencoder into one with more,
  producing identical output until the decoder is fine-tuned (``relic train finetune-decoder
  --decoder-res-blocks N``): the encoder, and so the latents every DiT stage was trained on, stay.
- ``fast_decoder``: the same architecture with the narrower ``fast_channels`` (the small fast
  decoder for streaming, trained/distilled separately); ``decode_chunk(..., fast=None)`` uses it
  when ``cfg.autoencoder.streaming_decoder == "fast"``.

Pixels are float in [-1, 1] (B, T, 3, H, W). Latents are normalised per channel by the buffers
``latent_mean`` / ``latent_std`` (set by training: :meth:`set_latent_stats`), so ``encode``
returns roughly unit-variance latents and ``decode`` expects them.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F


class _Res(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1)
        self.c2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.c2(F.silu(self.c1(F.silu(x))))


class FrameEncoder(nn.Module):
    """(N, 3, H, W) -> (N, channels[-1], H/2^n, W/2^n), n = len(channels)."""

    def __init__(self, in_ch: int, channels: list[int]):
        super().__init__()
        layers, c = [], in_ch
        for co in channels:
            layers += [nn.Conv2d(c, co, 3, stride=2, padding=1), nn.SiLU(), _Res(co)]
            c = co
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class FrameUpsampler(nn.Module):
    """(N, channels[-1], h, w) -> (N, 3, h 2^n, w 2^n).

    ``res_blocks`` residual blocks per stage: the first in ``net`` (the original layout, so
    checkpoints of ``res_blocks = 1`` keep their keys), the others in ``extra[stage]``, their last
    conv zero-initialised so a grown decoder starts as exactly the decoder it was grown from
    (:func:`grow_decoder`)."""

    def __init__(self, out_ch: int, channels: list[int], res_blocks: int = 1):
        super().__init__()
        if res_blocks < 1:
            raise ValueError(f"res_blocks must be >= 1, got {res_blocks}")
        layers = [_Res(channels[-1])]
        widths = [channels[-1]]
        for i in range(len(channels) - 1, 0, -1):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels[i], channels[i - 1], 3, padding=1),
                       nn.SiLU(), _Res(channels[i - 1])]
            widths.append(channels[i - 1])
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels[0], out_ch, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        self.extra = nn.ModuleList()   # one Sequential per stage; empty (no tensors, identity) at 1 block
        for c in widths:
            blocks = [_Res(c) for _ in range(res_blocks - 1)]
            for b in blocks:
                nn.init.zeros_(b.c2.weight)
                nn.init.zeros_(b.c2.bias)
            self.extra.append(nn.Sequential(*blocks))

    def forward(self, x):
        k = 0
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, _Res):
                x = self.extra[k](x)
                k += 1
        return x


class CausalDecoder(nn.Module):
    """Decodes latent j from [z_j, z_{j-1}] into 1 (j = 0) or tf (j >= 1) frames."""

    def __init__(self, latent_ch: int, out_ch: int, channels: list[int], tf: int, res_blocks: int = 1):
        super().__init__()
        self.tf, self.c = tf, channels[-1]
        self.first_in = nn.Conv2d(2 * latent_ch, channels[-1], 3, padding=1)
        self.group_in = nn.Conv2d(2 * latent_ch, tf * channels[-1], 3, padding=1)
        self.up = FrameUpsampler(out_ch, channels, res_blocks)

    def forward(self, z: torch.Tensor, prev: torch.Tensor | None, count: int) -> torch.Tensor:
        """z (B, Fc, C, h, w) latents number ``count``.. of the clip; prev (B, C, h, w) latent
        ``count - 1`` or None. Returns (B, T', 3, H, W) frames in order."""
        B, Fc, C, h, w = z.shape
        if prev is None:
            prev = torch.zeros_like(z[:, 0])
        prevs = torch.cat([prev.unsqueeze(1), z[:, :-1]], 1)
        inp = torch.cat([z, prevs], 2)                                  # (B, Fc, 2C, h, w)
        feats = []
        start = 0
        if count == 0:
            feats.append(self.first_in(inp[:, 0]).unsqueeze(1))          # (B, 1, c, h, w)
            start = 1
        if Fc > start:
            g = self.group_in(inp[:, start:].reshape(-1, 2 * C, h, w))   # (B*(Fc-s), tf*c, h, w)
            feats.append(g.view(B, (Fc - start) * self.tf, self.c, h, w))
        f = torch.cat(feats, 1)
        T = f.shape[1]
        out = self.up(f.reshape(B * T, self.c, h, w))
        return out.view(B, T, *out.shape[1:])


class VideoAutoencoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        a = cfg.autoencoder
        self.cfg = cfg
        self.tf, self.sf, self.latent_channels = a.temporal_factor, a.spatial_factor, a.latent_channels
        c = a.channels
        self.encoder = FrameEncoder(a.in_channels, c)
        self.first_frame = a.first_frame
        if a.first_frame == "head":
            self.first_head = nn.Conv2d(c[-1], a.latent_channels, 3, padding=1)
        self.group_head = nn.Sequential(nn.Conv2d(a.temporal_factor * c[-1], c[-1], 3, padding=1), nn.SiLU(),
                                        nn.Conv2d(c[-1], a.latent_channels, 3, padding=1))
        self.decoder = CausalDecoder(a.latent_channels, a.in_channels, c, a.temporal_factor, a.decoder_res_blocks)
        self.fast_decoder = CausalDecoder(a.latent_channels, a.in_channels, a.fast_channels, a.temporal_factor)
        self.register_buffer("latent_mean", torch.zeros(a.latent_channels))
        self.register_buffer("latent_std", torch.ones(a.latent_channels))

    def num_latent_frames(self, T: int) -> int:
        return 1 + (T - 1) // self.tf

    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-channel statistics of raw latents (used to normalise ``encode`` output)."""
        self.latent_mean.copy_(mean.to(self.latent_mean))
        self.latent_std.copy_(std.to(self.latent_std).clamp_min(1e-6))

    def _norm(self, z):
        return (z - self.latent_mean.view(-1, 1, 1)) / self.latent_std.view(-1, 1, 1)

    def _denorm(self, z):
        return z * self.latent_std.view(-1, 1, 1) + self.latent_mean.view(-1, 1, 1)

    def encode_raw(self, video: torch.Tensor) -> torch.Tensor:
        """Unnormalised latents (B, F, C, h, w) of video (B, T, 3, H, W) in [-1, 1]."""
        B, T, _, H, W = video.shape
        if H % self.sf or W % self.sf:
            raise ValueError(f"video {H}x{W} not divisible by spatial factor {self.sf}")
        Fl = self.num_latent_frames(T)
        T_used = 1 + self.tf * (Fl - 1)
        feats = self.encoder(video[:, :T_used].reshape(B * T_used, *video.shape[2:]))
        feats = feats.view(B, T_used, *feats.shape[1:])
        c, h, w = feats.shape[2:]
        if self.first_frame == "head":
            out = [self.first_head(feats[:, 0]).unsqueeze(1)]
        else:   # replicate: frame 0 repeated tf times through the group head
            out = [self.group_head(feats[:, 0].repeat(1, self.tf, 1, 1)).unsqueeze(1)]
        if Fl > 1:
            g = feats[:, 1:].reshape(B * (Fl - 1), self.tf * c, h, w)
            out.append(self.group_head(g).view(B, Fl - 1, -1, h, w))
        return torch.cat(out, 1)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, T, 3, H, W) in [-1, 1] -> normalised latents (B, 1 + (T-1)//tf, C, H/sf, W/sf)."""
        return self._norm(self.encode_raw(video))

    def decode(self, latents: torch.Tensor, fast: bool = False) -> torch.Tensor:
        """Normalised latents (B, F, C, h, w) of a whole clip -> video (B, 1 + tf (F-1), 3, H, W)."""
        return self.decode_chunk(latents, None, fast=fast)[0]

    def new_decode_cache(self) -> dict:
        return {"prev": None, "count": 0}

    def decode_chunk(self, latents: torch.Tensor, cache: dict | None = None, fast: bool | None = None):
        """Streaming decode. ``latents`` (B, Fc, C, h, w) are the next latents of a clip; ``cache``
        from the previous call (None = start of clip). Returns (frames (B, T', 3, H, W), cache):
        1 frame for latent 0 of the clip, tf frames for each later latent."""
        if cache is None:
            cache = self.new_decode_cache()
        if fast is None:
            fast = self.cfg.autoencoder.streaming_decoder == "fast"
        dec = self.fast_decoder if fast else self.decoder
        z = self._denorm(latents)
        frames = dec(z, cache["prev"], cache["count"])
        return frames, {"prev": z[:, -1], "count": cache["count"] + latents.shape[1]}


def grow_decoder(ae: VideoAutoencoder, res_blocks: int) -> tuple[VideoAutoencoder, object]:
    """(a new autoencoder whose full decoder has ``res_blocks`` residual blocks per stage, its config).

    Every tensor of ``ae`` is copied; the added blocks are residual branches with a zero last conv,
    so the new autoencoder encodes and decodes exactly as ``ae`` until it is trained. Shrinking is
    refused (it would drop trained weights)."""
    have = ae.cfg.autoencoder.decoder_res_blocks
    if res_blocks < have:
        raise ValueError(f"the decoder has {have} residual blocks per stage; growing to {res_blocks} would drop "
                         "trained weights")
    cfg = dataclasses.replace(ae.cfg, autoencoder=dataclasses.replace(ae.cfg.autoencoder,
                                                                        decoder_res_blocks=res_blocks))
    new = VideoAutoencoder(cfg)
    missing, unexpected = new.load_state_dict(ae.state_dict(), strict=False)
    bad = [k for k in missing if not k.startswith("decoder.up.extra.")]
    if bad or unexpected:
        raise RuntimeError(f"grow_decoder: unexpected state-dict difference (missing {bad}, unexpected {unexpected})")
    return new.to(next(ae.parameters()).device), cfg


__all__ = ["VideoAutoencoder", "CausalDecoder", "FrameEncoder", "FrameUpsampler", "grow_decoder"]
