"""RELIC diffusion transformer (flow matching over latent frames).

``RelicDiT(cfg).forward(x, sigma, text, actions, poses, attn_mode, cache, frame_offset,
update_cache) -> v``

- ``x`` (B, F, C, h, w) noisy latents ``x_t = (1 - sigma) x0 + sigma eps``; frame 0 of a clip is
  the clean first-image latent (sigma = 0). ``sigma`` (B, F) in [0, 1] per latent frame.
- Output: predicted velocity ``v = eps - x0`` (B, F, C, h, w).
- ``text`` (B, L, Dt) from :class:`~relic_model.nn.text.TextEncoder` -> cross-attention in every
  block.
- ``actions`` (B, F, 4, 13) relative actions -> :class:`ActionEncoder` -> per-block linear, ADDED
  to the hidden state right after self-attention, in every block.
- ``poses`` (B, F, 4, 12) absolute poses -> :class:`PoseEncoder` -> per-block linears ADDED to Q
  and K (not V) of self-attention.
- Tokens: ``patch_size`` x ``patch_size`` latent cells per token; 3-axis RoPE over absolute
  (frame, row, col) with frame = ``frame_offset`` + index; QK-norm; per-frame adaLN modulation
  from sigma.
- ``attn_mode``: "bidirectional" (teacher; every token sees every token) or "block_causal"
  (student): frames are grouped into blocks (frame 0 alone, then ``frames_per_block`` frames per
  block); a token sees its own block and all earlier blocks.
- ``dit.first_frame_concat`` (off in the bundled tiny checkpoint): latent 0 (the clean first
  image) is concatenated channel-wise to every frame's input (``first_embed``, zero-initialised,
  is the extra half of the patch embedding). Latent 0 is ``x[:, 0]`` when ``frame_offset == 0``
  (and is then stored in the cache when ``update_cache``), else ``cache.first_latent``.
- ``cache``: a :class:`~relic_model.nn.memory.KVCache` holding earlier frames (always visible);
  ``update_cache=True`` commits this call's K/V (frames ``frame_offset..``, which must equal
  ``cache.num_frames``) after computing the output; with ``memory_only=True`` as well they are only
  kept aside for these frames' later entry into the compressed memory (context noise on the window
  only: see :mod:`relic_model.nn.memory`), and the normal commit of the same frames must follow.

Execution options (none changes the maths; tests check each against the plain path):

- ``cfg.dit.attention``: block-causal attention implementation ("chunked" default, "flex",
  "dense" reference; see :func:`relic_model.nn.attention.attend`): no N x N mask unless "dense".
- ``set_precision("bf16")``: the forward runs under ``torch.autocast`` (bfloat16 matmuls and
  attention) while the parameters stay float32 (master weights for the optimizer); RoPE angles,
  the timestep embedding and the output (cast back to the input's dtype) stay float32.
- ``set_activation_checkpointing(True)``: each DiT block runs under
  ``torch.utils.checkpoint.checkpoint(use_reentrant=False)`` when autograd is on: only the block
  inputs are kept and the block is recomputed in backward. Cached K/V are read before the block
  and committed after it (outside the recomputed region), so recomputation never sees a cache
  that was modified in between.
- ``context_parallel`` (set by :func:`relic_model.context_parallel.enable_context_parallel`):
  each rank runs the blocks on its shard of the frames (K/V gathered per layer, block-causal by
  global token index) and the head's input is gathered, so every rank returns the full output.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from .attention import CrossAttention, SelfAttention
from .control import ActionEncoder, PoseEncoder
from .memory import KVCache
from .rope import Rope3D, grid_positions


def timestep_embedding(sigma: torch.Tensor, dim: int = 256) -> torch.Tensor:
    """Sinusoidal embedding of ``1000 * sigma`` (any shape) -> (*shape, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=sigma.device, dtype=torch.float32) / half)
    a = (sigma.float() * 1000.0).unsqueeze(-1) * freqs
    return torch.cat([a.cos(), a.sin()], dim=-1)


def block_ids(frames: torch.Tensor, frames_per_block: int) -> torch.Tensor:
    """Generation block of each absolute latent frame: frame 0 alone (block 0), then
    ``frames_per_block`` frames per block."""
    return torch.where(frames == 0, torch.zeros_like(frames), 1 + (frames - 1).clamp_min(0) // frames_per_block)


class RelicBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, qk_norm: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, heads, qk_norm)
        self.action_proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.cross = CrossAttention(dim, heads, qk_norm)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.modulation = nn.Parameter(torch.zeros(6, dim))

    def forward(self, x, mod, pose_e, act_e, cos, sin, seg_ends, text_kv, cache=None, layer=0, plan=None,
                impl="chunked", past=None, return_kv=False, cp=None):
        """x (B, F, n, D); mod (B, F, 6, D); pose_e / act_e (B, F, D); text_kv: this block's
        cross-attention (k, v), or the projected text (B, L, D) to compute them from; seg_ends: block-causal query
        segments (None = full attention among current tokens); ``past``/``return_kv``: see
        :meth:`SelfAttention.forward` (used under activation checkpointing)."""
        m = (mod + self.modulation).unsqueeze(3)           # (B, F, 6, 1, D)
        sh1, sc1, g1, sh2, sc2, g2 = m.unbind(2)
        if torch.is_tensor(text_kv):   # projected text (B, L, D): this block's K/V computed here (FSDP)
            text_kv = self.cross.text_kv(text_kv)
        h = self.norm1(x) * (1 + sc1) + sh1
        a = self.attn(h, pose_e, cos, sin, seg_ends, cache, layer, plan, impl, past, return_kv, cp=cp)
        if return_kv:
            a, k, v = a
        x = x + g1 * a
        x = x + self.action_proj(act_e).unsqueeze(2)       # actions: added after self-attention
        x = x + self.cross(self.norm2(x), text_kv)
        x = x + g2 * self.mlp(self.norm3(x) * (1 + sc2) + sh2)
        return (x, k, v) if return_kv else x


class RelicDiT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, ae = cfg.dit, cfg.autoencoder
        self.dim, self.patch = d.dim, d.patch_size
        self.latent_channels = ae.latent_channels
        self.frames_per_block = d.frames_per_block
        tf = ae.temporal_factor
        D = d.dim
        self.patch_embed = nn.Linear(ae.latent_channels * d.patch_size ** 2, D)
        self.first_frame_concat = bool(getattr(d, "first_frame_concat", False))
        if self.first_frame_concat:   # the first-image half of a channel-concatenated patch embedding
            self.first_embed = nn.Linear(ae.latent_channels * d.patch_size ** 2, D, bias=False)
            nn.init.zeros_(self.first_embed.weight)
        self.time_embed = nn.Sequential(nn.Linear(256, D), nn.SiLU(), nn.Linear(D, D))
        self.time_mod = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))
        self.text_proj = nn.Sequential(nn.Linear(d.text_dim, D), nn.GELU(approximate="tanh"), nn.Linear(D, D))
        self.action_encoder = ActionEncoder(D, tf, d.action_dim)
        self.pose_encoder = PoseEncoder(D, tf, d.pose_dim, d.pose_translation_scale)
        self.blocks = nn.ModuleList(RelicBlock(D, d.heads, d.mlp_ratio, d.qk_norm) for _ in range(d.depth))
        self.final_norm = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.final_mod = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * D))
        self.head = nn.Linear(D, ae.latent_channels * d.patch_size ** 2)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.rope = Rope3D(D // d.heads, d.rope_theta, d.rope_frame_scale)
        self.attn_impl = d.attention
        self.autocast_dtype: torch.dtype | None = None
        self.activation_checkpointing = False
        #: compute each block's text K/V inside the block (set for FSDP2, whose block parameters
        #: are only gathered inside the block's forward); the default precomputes them once per
        #: prompt and keeps them in the KV cache (inference)
        self.text_kv_in_blocks = False
        #: context parallelism (relic_model/context_parallel.py): None, or a ContextParallel
        #: that shards every forward's tokens over its ranks
        self.context_parallel = None

    def set_precision(self, precision: str) -> None:
        """"fp32" (plain) or "bf16" (autocast compute, float32 parameters)."""
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        self.autocast_dtype = torch.bfloat16 if precision == "bf16" else None

    def set_activation_checkpointing(self, on: bool) -> None:
        self.activation_checkpointing = bool(on)

    def _autocast(self, device: torch.device):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ helpers
    def token_grid(self, h: int | None = None, w: int | None = None) -> tuple[int, int]:
        """Token grid (gh, gw) for latents of size h x w (default: the config's resolution)."""
        if h is None:
            f = self.cfg.autoencoder.spatial_factor
            h, w = self.cfg.data.height // f, self.cfg.data.width // f
        return h // self.patch, w // self.patch

    def new_cache(self, memory: bool | None = None, window: int | None = None, schedule=None,
                  h: int | None = None, w: int | None = None) -> KVCache:
        """An empty :class:`KVCache` for this model (defaults from ``cfg.memory``)."""
        m = self.cfg.memory
        return KVCache(len(self.blocks), self.token_grid(h, w), m.window if window is None else window,
                       m.schedule if schedule is None else schedule, m.enabled if memory is None else memory,
                       self.rope)

    def set_frame_scale(self, scale: float) -> None:
        """RoPE frame-position scale (horizon curriculum: ``old_frames / new_frames`` interpolates
        the longer clip into the trained position range; 1.0 = plain positions)."""
        self.rope.frame_scale = float(scale)
        self.cfg.dit.rope_frame_scale = float(scale)

    def text_kv(self, text: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-block cross-attention K/V for ``text`` (B, L, Dt)."""
        ctx = self.text_proj(text)
        return [blk.cross.text_kv(ctx) for blk in self.blocks]

    def _patchify(self, x: torch.Tensor) -> torch.Tensor:
        B, Fr, C, h, w = x.shape
        p = self.patch
        x = x.reshape(B, Fr, C, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
        return x.reshape(B, Fr, (h // p) * (w // p), C * p * p)

    def _unpatchify(self, t: torch.Tensor, h: int, w: int) -> torch.Tensor:
        B, Fr, n, _ = t.shape
        p, C = self.patch, self.latent_channels
        t = t.reshape(B, Fr, h // p, w // p, C, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        return t.reshape(B, Fr, C, h, w)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor, actions: torch.Tensor,
                poses: torch.Tensor, attn_mode: str = "bidirectional", cache: KVCache | None = None,
                frame_offset: int = 0, update_cache: bool = False, memory_only: bool = False) -> torch.Tensor:
        B, Fr, C, h, w = x.shape
        if C != self.latent_channels or h % self.patch or w % self.patch:
            raise ValueError(f"latents {tuple(x.shape)} do not match C={self.latent_channels}, patch={self.patch}")
        if sigma.shape != (B, Fr):
            raise ValueError(f"sigma must be (B, F) = {(B, Fr)}, got {tuple(sigma.shape)}")
        if actions.shape[:2] != (B, Fr) or poses.shape[:2] != (B, Fr):
            raise ValueError(f"actions {tuple(actions.shape)} / poses {tuple(poses.shape)} must start with (B, F) = {(B, Fr)}")
        if attn_mode not in ("bidirectional", "block_causal"):
            raise ValueError(f"attn_mode must be 'bidirectional' or 'block_causal', got {attn_mode!r}")
        if update_cache and cache is None:
            raise ValueError("update_cache=True needs a cache")
        if memory_only and not update_cache:
            raise ValueError("memory_only=True is a kind of commit: it needs update_cache=True")
        gh, gw = h // self.patch, w // self.patch
        if cache is not None and cache.grid != (gh, gw):
            raise ValueError(f"cache grid {cache.grid} != token grid {(gh, gw)}")
        first = None
        if self.first_frame_concat:
            if frame_offset == 0:
                first = x[:, :1]
                if update_cache and not memory_only:
                    cache.first_latent = first.detach()
            elif cache is not None and cache.first_latent is not None:
                first = cache.first_latent
            else:
                raise ValueError("dit.first_frame_concat needs latent 0: pass frame 0 (frame_offset=0) or a cache "
                                 "that committed it")
            if first.shape[0] != B:
                first = first.expand(B, *first.shape[1:])

        frames = torch.arange(frame_offset, frame_offset + Fr, device=x.device)
        cos, sin = self.rope.cos_sin(grid_positions(frames, gh, gw), torch.float32 if self.autocast_dtype else x.dtype)
        seg_ends = None
        if attn_mode == "block_causal":
            bid = block_ids(frames, self.frames_per_block).tolist()
            if bid[0] != bid[-1]:   # query segments: runs of equal block id (frames are consecutive)
                seg_ends = [(j + 1) * gh * gw for j in range(Fr) if j == Fr - 1 or bid[j + 1] != bid[j]]

        with self._autocast(x.device):
            if self.text_kv_in_blocks:
                text_kv = [self.text_proj(text)] * len(self.blocks)
            elif cache is not None:
                if cache.text_kv is None or cache.text_ref is not text:
                    cache.text_kv, cache.text_ref = self.text_kv(text), text
                text_kv = cache.text_kv
            else:
                text_kv = self.text_kv(text)
            plan = cache.plan(frames.tolist(), memory_only) if update_cache else None

            temb = self.time_embed(timestep_embedding(sigma))                 # (B, F, D)
            mod = self.time_mod(temb).view(B, Fr, 6, self.dim)
            act_e = self.action_encoder(actions.to(x.dtype))
            pose_e = self.pose_encoder(poses.to(x.dtype))
            t = self.patch_embed(self._patchify(x))                          # (B, F, n, D)
            if first is not None:
                t = t + self.first_embed(self._patchify(first.to(x.dtype)))
            ckpt = self.activation_checkpointing and torch.is_grad_enabled()
            cp = None
            if self.context_parallel is not None:   # keep this rank's frames; gathered again below
                cp = self.context_parallel.layout(Fr, gh * gw)
                t, mod, pose_e, act_e, cos, sin = cp.shard(t, mod, pose_e, act_e, cos, sin)
            for i, blk in enumerate(self.blocks):
                if not ckpt:
                    t = blk(t, mod, pose_e, act_e, cos, sin, seg_ends, text_kv[i], cache, i, plan, self.attn_impl,
                            cp=cp)
                    continue
                # checkpointed: read the held K/V now, recompute the block in backward from its
                # inputs only, commit this call's K/V after the block (outside the recomputation)
                past = cache.held_kv(i) if cache is not None else None
                t, k, v = checkpoint(blk, t, mod, pose_e, act_e, cos, sin, seg_ends, text_kv[i], None, i, None,
                                     self.attn_impl, past, True, cp=cp, use_reentrant=False)
                if plan is not None:
                    cache.commit(i, k, v, plan)
            if plan is not None:
                cache.finish(plan)
            if cp is not None:
                t = cp.gather_output(t)
            sh, sc = self.final_mod(temb).view(B, Fr, 2, 1, self.dim).unbind(2)
            t = self.head(self.final_norm(t) * (1 + sc) + sh)
        return self._unpatchify(t.to(x.dtype), h, w)


__all__ = ["RelicDiT", "RelicBlock", "timestep_embedding", "block_ids"]
