"""Streaming RELIC generation: first frame + prompt, then action chunks -> frames, block by block.

Per generation block (``dit.frames_per_block`` latent frames = ``4 * frames_per_block`` video
frames):

1. the block's actions (``(4 * fpb, 13)``, :mod:`datagen.actions` order) are integrated into
   absolute poses from the current camera pose (:func:`relic_model.nn.control.integrate_actions`,
   with gamma = 1 so translations are in label units, like training's ``pose12_from_c2w``);
2. :func:`relic_model.inference.sampler.denoise_block` runs the student's few-step sampler
   (``sampling.sigmas``, 4 steps by default) block-causally against the KV cache;
3. the clean latents are run once more with sigma = 0 and ``update_cache=True`` (the cache keeps
   clean K/V: rolling window + compressed memory, or the window only when ``memory=False``); with
   ``sampling.context_sigma = c > 0`` they are committed noised to sigma ``c`` instead, as the
   student was trained (``objectives.flow_matching.noised_context``); with
   ``sampling.context_scope = "window"`` the clean latents are first run with ``memory_only=True``
   so the compressed memory gets the clean pass's K/V and only the window reads noised context;
4. the block is decoded with the autoencoder's causal streaming decoder and returned at once.

Memory read budget (beyond the paper; ``memory.read_budget`` / ``memory.select`` in the config,
default None = the paper's behaviour, everything attended): before step 2 the generator picks at
most ``read_budget`` compressed-memory latent frames with
:func:`relic_model.nn.memory.select_memory_frames` and masks the others' keys for the whole block
(all denoising steps and the commit pass). Each latent frame's pose for ``select="pose"`` is the
integrated camera-to-world of its LAST video frame (label units; latent 0 = the identity).

Frames are uint8 (H, W, 3) at the first frame's resolution (the model runs at the config's
resolution; inputs/outputs are resized with OpenCV when they differ). Everything random comes from
one ``torch.Generator`` seeded at :meth:`StreamingGenerator.reset` (``sampling.seed`` unless given).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from relic_model.nn.control import integrate_actions
from relic_model.nn.memory import select_memory_frames, wants_clean_memory_pass
from relic_model.inference.sampler import denoise_block
from relic_model.objectives.flow_matching import noised_context

STATIC_ROW = np.zeros(13, dtype=np.float32)
STATIC_ROW[12] = 1.0


def to_model_image(frame: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, height, width) in [-1, 1] (INTER_AREA resize if needed)."""
    f = np.asarray(frame)
    if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
        raise ValueError(f"first_frame must be uint8 (H, W, 3), got {f.dtype} {f.shape}")
    if f.shape[:2] != (height, width):
        import cv2
        f = cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1).float() / 127.5 - 1.0


def to_uint8_frames(video: torch.Tensor, out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """float (T, 3, h, w) in [-1, 1] -> uint8 (T, H, W, 3) (resized to ``out_hw`` if given)."""
    v = ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    if out_hw is not None and v.shape[1:3] != tuple(out_hw):
        import cv2
        v = np.stack([cv2.resize(x, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR) for x in v])
    return v


class StreamingGenerator:
    """Block-causal streaming generator over a :class:`RelicDiT`, autoencoder and text encoder."""

    def __init__(self, model, autoencoder, text_encoder, cfg, memory: bool = True, device="cpu"):
        self.model, self.ae, self.text_encoder, self.cfg = model, autoencoder, text_encoder, cfg
        self.memory = bool(memory)
        self.device = torch.device(device)
        self.tf = cfg.autoencoder.temporal_factor
        self.fpb = cfg.dit.frames_per_block
        self.sigmas = [float(s) for s in cfg.sampling.sigmas]
        self.context_sigma = float(getattr(cfg.sampling, "context_sigma", 0.0))
        self.context_scope = str(getattr(cfg.sampling, "context_scope", "all"))
        self.cache = None
        m = cfg.memory
        self.read_budget = getattr(m, "read_budget", None)
        self.read_horizon = getattr(m, "read_horizon", None)
        self.read_horizon_mode = getattr(m, "read_horizon_mode", "linear")
        self.select = getattr(m, "select", "recent")
        self.select_kw = dict(angle_unit_deg=float(getattr(m, "select_angle_deg", 30.0)),
                              distance_unit=float(getattr(m, "select_distance", 16.0)),
                              keep_first=bool(getattr(m, "select_keep_first", False)))
        self.frame_c2w: list[np.ndarray] = []   # per committed latent frame: c2w of its last video frame
        self.last_read_frames: list[int] | None = None

    @property
    def frames_per_block(self) -> int:
        """Video frames produced per generation block (4 x frames_per_block)."""
        return self.tf * self.fpb

    @torch.inference_mode()
    def reset(self, first_frame: np.ndarray, prompt: str, K: np.ndarray | None = None, seed: int | None = None) -> None:
        """Start an episode from ``first_frame`` uint8 (H, W, 3) with ``prompt``. ``K`` (intrinsics)
        is accepted for interface compatibility; the model does not use it."""
        H, W = self.cfg.data.height, self.cfg.data.width
        self.out_hw = tuple(np.asarray(first_frame).shape[:2])
        img = to_model_image(first_frame, H, W).to(self.device)
        self.gen = torch.Generator(device=self.device).manual_seed(int(self.cfg.sampling.seed if seed is None else seed))
        self.text = self.text_encoder.encode_text([str(prompt)])
        z0 = self.ae.encode(img[None, None])                                        # (1, 1, C, h, w)
        self.cache = self.model.new_cache(memory=self.memory, h=z0.shape[-2], w=z0.shape[-1])
        self.c2w = np.eye(4)
        self.frame_c2w = [np.eye(4)]
        self.last_read_frames = None
        zeros_a = torch.zeros(1, 1, self.tf, 13, device=self.device)
        pose0 = torch.from_numpy(np.tile(np.eye(4)[:3, :4].reshape(12), (self.tf, 1))).float()
        self.model(z0, torch.zeros(1, 1, device=self.device), self.text, zeros_a, pose0[None, None].to(self.device),
                   attn_mode="block_causal", cache=self.cache, frame_offset=0, update_cache=True)
        _, self.dec_cache = self.ae.decode_chunk(z0, None)
        self.latents = [z0]
        self.latent_shape = tuple(z0.shape[2:])

    def _block_controls(self, actions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(fpb*tf, 13) actions -> model tensors (1, fpb, tf, 13) and (1, fpb, tf, 12); advances the pose."""
        c2w = integrate_actions(actions, 1.0, self.c2w)                              # (n, 4, 4)
        self.c2w = c2w[-1]
        self._block_c2w = c2w[self.tf - 1::self.tf]                                   # (fpb, 4, 4)
        pose12 = c2w[:, :3, :4].reshape(len(c2w), 12)
        a = torch.from_numpy(np.asarray(actions, np.float32)).view(1, self.fpb, self.tf, 13)
        p = torch.from_numpy(pose12.astype(np.float32)).view(1, self.fpb, self.tf, 12)
        return a.to(self.device), p.to(self.device)

    def _select_memory(self, query_c2w: np.ndarray) -> None:
        """Apply the memory read horizon and read budget for the next block (no-ops when None)."""
        self.last_read_frames = None
        if self.read_horizon is not None:
            self.cache.set_read_horizon(self.read_horizon, self.read_horizon_mode)
        if self.read_budget is None or not self.cache.memory_frames:
            return
        mem = [f for f, _ in self.cache.memory_frames]
        sel = select_memory_frames(mem, self.read_budget, self.select,
                                   np.stack([self.frame_c2w[f] for f in mem]), query_c2w, **self.select_kw)
        self.cache.set_read_frames(sel)
        self.last_read_frames = sel

    @torch.inference_mode()
    def generate_block(self, actions: np.ndarray, commit: torch.Tensor | None = None) -> torch.Tensor:
        """Generate one block's clean latents (1, fpb, C, h, w) for ``actions`` (4*fpb, 13) and commit
        them to the KV cache (no decoding). ``commit`` (probes: teacher forcing) enters the cache
        instead of the generated latents; the generated ones are still returned."""
        if self.cache is None:
            raise RuntimeError("call reset(first_frame, prompt, K) before step()")
        a, p = self._block_controls(actions)
        self._select_memory(self._block_c2w)
        noise = torch.randn((1, self.fpb, *self.latent_shape), generator=self.gen, device=self.device)
        off = self.cache.num_frames
        kw = dict(text=self.text, actions=a, poses=p, attn_mode="block_causal", cache=self.cache, frame_offset=off)
        x0 = denoise_block(self.model, noise, self.sigmas, self.gen, **kw)
        clean = x0 if commit is None else commit.to(x0)
        if wants_clean_memory_pass(self.cache, self.context_sigma, self.context_scope):
            self.model(clean, torch.zeros(clean.shape[:2], device=clean.device), update_cache=True,
                       memory_only=True, **kw)
        xc, sc = noised_context(clean, self.context_sigma, self.gen, off)
        self.model(xc, sc, update_cache=True, **kw)
        self.frame_c2w.extend(np.asarray(c) for c in self._block_c2w)
        self.latents.append(x0)
        return x0

    @torch.inference_mode()
    def step_iter(self, actions: np.ndarray, gamma: float = 1.0) -> Iterator[np.ndarray]:
        """Yield uint8 frames (n, H, W, 3) block by block, each as soon as its denoising and decoding
        finish. A trailing partial block is padded with static actions and only its first frames
        are yielded (the cache still advances by a whole block). ``gamma`` does not change the
        model's inputs: poses are in label units (translation / gamma), as in training."""
        a = np.asarray(actions, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != 13:
            raise ValueError(f"actions must be (k, 13), got {a.shape}")
        n = self.frames_per_block
        for start in range(0, len(a), n):
            chunk = a[start:start + n]
            k = len(chunk)
            if k < n:
                chunk = np.vstack([chunk, np.tile(STATIC_ROW, (n - k, 1))])
            x0 = self.generate_block(chunk)
            frames, self.dec_cache = self.ae.decode_chunk(x0, self.dec_cache)
            yield to_uint8_frames(frames[0, :k], self.out_hw)

    def step(self, actions: np.ndarray, gamma: float = 1.0) -> np.ndarray:
        """Advance by ``len(actions)`` frames; returns uint8 (k, H, W, 3)."""
        out = list(self.step_iter(actions, gamma))
        if not out:
            return np.zeros((0, *self.out_hw, 3), np.uint8)
        return np.concatenate(out, 0)


__all__ = ["StreamingGenerator", "to_model_image", "to_uint8_frames"]
