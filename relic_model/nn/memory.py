"""RELIC's two-branch KV memory for block-causal streaming.

Per transformer layer the cache holds, in one contiguous buffer (B, heads, tokens, head_dim):

    [ compressed memory | rolling window | scratch for the block being generated ]

- rolling window: the K/V of the last ``window`` committed latent frames, uncompressed
  (``gh * gw`` tokens per frame);
- compressed memory: every older latent frame ``i``, its K and V spatially average-pooled over
  ``s x s`` token windows with ``s = schedule[i % len(schedule)]`` (the paper's
  S = [1,4,2,4,4,4,2,4,4,2,4,4,4,2,4,4,2,4]); grids not divisible by ``s`` are padded and the mean
  is over the valid cells only, so a pooled frame has ``ceil(gh/s) * ceil(gw/s)`` tokens.

Keys are stored already rotated by RoPE. When a frame leaves the window its keys are rotated back
(RoPE is orthogonal, so this is exact), pooled, and rotated again at the pooled tokens' positions
(the mean (frame, row, col) of the cells they pool): compressed tokens keep matching positions.

``enabled=False`` (the no-memory ablation) drops frames that leave the window: the cache never
holds more than ``window`` frames. ``schedule=[1]`` with ``enabled=True`` is the uncompressed
full-history cache used as the scaling baseline.

Read budget (beyond the paper; inference only). :meth:`KVCache.set_read_frames` restricts which
compressed-memory frames the next reads attend to: :meth:`KVCache.read_mask` returns a boolean
key mask over the held tokens (``True`` = attended) that hides the compressed tokens of every
memory frame not selected; rolling-window tokens and the current block are always visible and the
cache contents are untouched (nothing is lost; the next block may select other frames). The
selection is cleared by every commit (:meth:`KVCache.finish`), so it is set per generation block.
:func:`select_memory_frames` picks the frames ("recent" or camera-"pose" closest).

Read horizon (beyond the paper; inference only). :meth:`KVCache.set_read_horizon` bounds the
frame-axis RoPE distance between the block being generated and every compressed-memory key: a
model trained on clips of ``L`` latent frames never saw query-key frame distances beyond ``L - 1``,
yet streaming a minute holds memory hundreds of frames back. With horizon ``H`` (> window) and the
oldest memory frame at distance ``d_max > H`` from the block's first frame ``q0``, a memory frame
at distance ``d = q0 - f`` is read as if it were at ``d' = W + (d - W) (H - W) / (d_max - W)``
(linear position interpolation of the memory branch only, order preserved; ``W`` = window). The
stored keys are not changed: :meth:`keys_values` returns memory keys rotated by the extra
frame-axis angle ``(d - d')`` (RoPE composes additively). Cleared by every commit.

Memory-only commits (beyond the paper; context noise on the window only). A forward with
``plan = cache.plan(frames, memory_only=True)`` stores its K/V aside for ``frames`` without changing
the window, the memory or ``num_frames``; the normal commit of the same frames that follows puts
its own K/V in the window, and when a frame later leaves the window the K/V kept aside for it are
the ones pooled into the compressed memory. So a block can enter the window as the student saw it
(noised context) and the memory clean. Frames committed without a memory-only pass are pooled from
the window as usual.

Two storage modes, chosen automatically: under ``torch.no_grad``/``inference_mode`` the buffers
are preallocated and written in place (no per-step copy of the whole history); with autograd
enabled every update is out of place (``torch.cat``), so gradients flow through cached K/V
(hybrid forcing, replayed back-propagation). Do not mix the two on one cache while a graph that
uses it is still alive; use :meth:`KVCache.clone` to snapshot.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .rope import Rope3D, apply_rope, grid_positions


def pooled_grid(gh: int, gw: int, s: int) -> tuple[int, int]:
    """Token grid of one frame pooled by ``s`` (ceil division)."""
    return math.ceil(gh / s), math.ceil(gw / s)


def frame_tokens(gh: int, gw: int, s: int) -> int:
    """Tokens of one latent frame stored with downsampling factor ``s`` (1 = uncompressed)."""
    a, b = pooled_grid(gh, gw, s)
    return a * b


def kv_token_counts(num_frames: int, grid: tuple[int, int], window: int, schedule, enabled: bool = True) -> dict:
    """KV tokens per layer held by the cache after ``num_frames`` latent frames were committed.

    Returns ``{"frames", "held", "window_tokens", "memory_tokens", "uncompressed", "ratio"}`` where
    ``uncompressed = num_frames * gh * gw`` (a full-history uncompressed cache) and
    ``ratio = uncompressed / held``.
    """
    gh, gw = grid
    n = gh * gw
    in_win = min(num_frames, window)
    mem = 0
    if enabled:
        for i in range(num_frames - in_win):
            mem += frame_tokens(gh, gw, int(schedule[i % len(schedule)]))
    held = mem + in_win * n
    unc = num_frames * n
    return {"frames": num_frames, "held": held, "window_tokens": in_win * n, "memory_tokens": mem,
            "uncompressed": unc, "ratio": (unc / held) if held else float("nan")}


def latent_frames_for_seconds(seconds: float, fps: float, temporal_factor: int) -> int:
    """Latent frames covering ``seconds`` of video at ``fps``: T = round(seconds * fps) video frames
    -> 1 + (T - 1) // temporal_factor latent frames (first frame alone, then groups)."""
    t = max(1, int(round(seconds * fps)))
    return 1 + (t - 1) // temporal_factor


def history_token_counts(seconds: float, cfg) -> dict:
    """:func:`kv_token_counts` for ``seconds`` of history under a :class:`RelicConfig` ``cfg``
    (its resolution, autoencoder factors, patch size, memory window and schedule)."""
    f = cfg.autoencoder.spatial_factor * cfg.dit.patch_size
    grid = (cfg.data.height // f, cfg.data.width // f)
    nf = latent_frames_for_seconds(seconds, cfg.data.fps, cfg.autoencoder.temporal_factor)
    out = kv_token_counts(nf, grid, cfg.memory.window, cfg.memory.schedule, cfg.memory.enabled)
    out["seconds"] = seconds
    return out


def pose_scores(mem_c2w: np.ndarray, query_c2w: np.ndarray, angle_unit_deg: float = 30.0,
                distance_unit: float = 16.0) -> np.ndarray:
    """View-proximity score of memory poses to a query block (lower = closer).

    ``mem_c2w`` (M, 4, 4), ``query_c2w`` (Q, 4, 4) camera-to-world (OpenCV camera axes, z =
    viewing direction; translation in any unit, the streaming generator uses pose label units).
    For memory pose m and query pose q::

        angle_deg(m, q) = degrees(arccos(clip(z_m . z_q, -1, 1)))      z = c2w[:3, 2] (unit)
        dist(m, q)      = || t_m - t_q ||_2                              t = c2w[:3, 3]
        score(m)        = min over q of  angle_deg / angle_unit_deg + dist / distance_unit

    Returns (M,) float64."""
    m = np.asarray(mem_c2w, dtype=np.float64).reshape(-1, 4, 4)
    q = np.asarray(query_c2w, dtype=np.float64).reshape(-1, 4, 4)
    zm = m[:, :3, 2] / np.linalg.norm(m[:, :3, 2], axis=1, keepdims=True)
    zq = q[:, :3, 2] / np.linalg.norm(q[:, :3, 2], axis=1, keepdims=True)
    ang = np.degrees(np.arccos(np.clip(zm @ zq.T, -1.0, 1.0)))                  # (M, Q)
    dist = np.linalg.norm(m[:, None, :3, 3] - q[None, :, :3, 3], axis=-1)      # (M, Q)
    return (ang / float(angle_unit_deg) + dist / float(distance_unit)).min(axis=1)


def select_memory_frames(mem_frames, budget: int | None, mode: str = "recent", mem_c2w=None, query_c2w=None,
                         angle_unit_deg: float = 30.0, distance_unit: float = 16.0,
                         keep_first: bool = False) -> list[int] | None:
    """Which compressed-memory frames a block attends to under a read budget.

    ``mem_frames``: absolute latent indices in the compressed memory (any order); ``budget``: max
    frames attended (None, or >= len(mem_frames): all -> returns None, i.e. no mask).
    ``mode="recent"``: the ``budget`` largest indices. ``mode="pose"``: the ``budget`` lowest
    :func:`pose_scores` (``mem_c2w`` (M, 4, 4) aligned with ``mem_frames``, ``query_c2w`` (Q, 4, 4)),
    ties broken by the more recent frame (larger index) -- fully deterministic.
    ``keep_first``: frame 0, when present, takes one of the ``budget`` slots first.
    Returns the selected frames sorted ascending, or None for "everything"."""
    frames = [int(f) for f in mem_frames]
    if budget is None or len(frames) <= int(budget):
        return None
    budget = int(budget)
    if mode not in ("recent", "pose"):
        raise ValueError(f"memory select mode must be 'recent' or 'pose', got {mode!r}")
    chosen: list[int] = []
    if keep_first and 0 in frames and budget > 0:
        chosen.append(0)
    rest = [i for i, f in enumerate(frames) if f not in chosen]
    if mode == "recent":
        order = sorted(rest, key=lambda i: -frames[i])
    else:
        if mem_c2w is None or query_c2w is None:
            raise ValueError("memory select mode 'pose' needs mem_c2w and query_c2w")
        mem_c2w = np.asarray(mem_c2w, dtype=np.float64)
        if len(mem_c2w) != len(frames):
            raise ValueError(f"mem_c2w has {len(mem_c2w)} poses for {len(frames)} memory frames")
        sc = pose_scores(mem_c2w, query_c2w, angle_unit_deg, distance_unit)
        order = sorted(rest, key=lambda i: (float(sc[i]), -frames[i]))
    chosen += [frames[i] for i in order[:budget - len(chosen)]]
    return sorted(chosen)


def wants_clean_memory_pass(cache: "KVCache", context_sigma: float, context_scope: str) -> bool:
    """Whether a commit of noised context (``context_sigma > 0``) must be preceded by a clean
    memory-only pass: ``context_scope == "window"`` and the cache has a compressed memory."""
    return context_sigma > 0 and context_scope == "window" and cache.enabled


@dataclass
class CommitPlan:
    """What one commit does (shared by all layers): frames added, frames evicted from the window
    (with their factor ``s``, or 0 when dropped), and the resulting token layout."""
    frames: list[int]
    evicted: list[tuple[int, int]]
    old_comp: int
    old_window: list[int]
    new_comp: int
    new_window: list[int]
    memory_only: bool = False


class KVCache:
    """Two-branch KV cache for ``depth`` layers on a ``grid = (gh, gw)`` token grid per latent frame.

    ``rope``: the model's :class:`Rope3D`, used to re-position pooled keys (``None`` pools keys as
    stored, for caches whose keys carry no rotary encoding)."""

    def __init__(self, depth: int, grid: tuple[int, int], window: int, schedule=(1,), enabled: bool = True,
                 rope: Rope3D | None = None):
        if window < 1:
            raise ValueError(f"KVCache window must be >= 1, got {window}")
        self.depth = int(depth)
        self.grid = (int(grid[0]), int(grid[1]))
        self.window = int(window)
        self.schedule = [int(s) for s in schedule]
        self.enabled = bool(enabled)
        self.rope = rope
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self.k: list[torch.Tensor | None] = [None] * self.depth
        self.v: list[torch.Tensor | None] = [None] * self.depth
        self.n_comp = 0                      # tokens in the compressed branch
        self.window_frames: list[int] = []   # absolute latent frame indices in the rolling window
        self.memory_frames: list[tuple[int, int]] = []  # (frame, s) in the compressed branch
        self.num_frames = 0                  # frames committed so far (next frame index)
        self.text_kv: list | None = None     # per-layer cross-attention K/V (set by the model)
        self.text_ref = None
        self.read_frames: list[int] | None = None   # memory frames readable (None = all)
        self._read_mask: torch.Tensor | None = None
        self._mem_rot: tuple[torch.Tensor, torch.Tensor] | None = None   # read-horizon key rotation
        self._mem_k: dict[int, torch.Tensor] = {}   # per layer: memory keys rotated for this block
        self.first_latent: torch.Tensor | None = None   # clean latent 0 (dit.first_frame_concat)
        self.aside: dict[int, list] = {}     # frame -> per layer (k, v) kept for its memory entry

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def n_tokens(self) -> int:
        """Tokens per layer currently held (compressed memory + window)."""
        return self.n_comp + len(self.window_frames) * self.tokens_per_frame

    def token_counts(self) -> dict:
        """``{"frames", "held", "window_tokens", "memory_tokens", "uncompressed", "ratio"}`` for the
        cache as it is (``uncompressed`` = what an uncompressed full-history cache would hold)."""
        n = self.tokens_per_frame
        unc = self.num_frames * n
        return {"frames": self.num_frames, "held": self.n_tokens, "window_tokens": len(self.window_frames) * n,
                "memory_tokens": self.n_comp, "uncompressed": unc,
                "ratio": (unc / self.n_tokens) if self.n_tokens else float("nan")}

    def clone(self) -> "KVCache":
        """Independent copy (buffers trimmed to the held tokens; autograd history kept)."""
        c = KVCache(self.depth, self.grid, self.window, self.schedule, self.enabled, self.rope)
        n = self.n_tokens
        c.k = [None if t is None else t[:, :, :n].clone() for t in self.k]
        c.v = [None if t is None else t[:, :, :n].clone() for t in self.v]
        c.n_comp, c.window_frames = self.n_comp, list(self.window_frames)
        c.memory_frames, c.num_frames = list(self.memory_frames), self.num_frames
        c.text_kv, c.text_ref = self.text_kv, self.text_ref
        c.read_frames, c._read_mask = self.read_frames, self._read_mask
        c._mem_rot, c._mem_k = self._mem_rot, {}
        c.first_latent = self.first_latent
        c.aside = {f: list(kv) for f, kv in self.aside.items()}
        return c

    # ------------------------------------------------------------------ read budget
    def set_read_frames(self, frames) -> None:
        """Restrict the next reads (until the next commit) to these compressed-memory frames
        (absolute latent indices; each must be in :attr:`memory_frames`). ``None`` = all."""
        if frames is None:
            self.read_frames, self._read_mask = None, None
            return
        keep = {int(f) for f in frames}
        held = [f for f, _ in self.memory_frames]
        missing = sorted(keep - set(held))
        if missing:
            raise ValueError(f"read frames {missing} are not in the compressed memory {held}")
        if len(keep) == len(held):
            self.read_frames, self._read_mask = None, None
            return
        parts = [torch.full((frame_tokens(*self.grid, s),), f in keep, dtype=torch.bool) for f, s in self.memory_frames]
        mask = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool)
        assert mask.numel() == self.n_comp
        win = torch.ones(len(self.window_frames) * self.tokens_per_frame, dtype=torch.bool)
        self.read_frames = sorted(keep)
        self._read_mask = torch.cat([mask, win])

    def memory_read_distances(self, horizon: int | None, mode: str = "linear") -> dict[int, float]:
        """``{memory frame: frame distance it is read at}`` for the next block under ``horizon``
        (see the module docstring); the true distance ``num_frames - f`` when no remap applies.
        ``mode="cap"``: distances beyond the horizon are read at the horizon, nearer ones unchanged."""
        q0 = self.num_frames
        frames = [f for f, _ in self.memory_frames]
        true = {f: float(q0 - f) for f in frames}
        if horizon is None or not frames:
            return true
        W, H = self.window, int(horizon)
        if H <= W:
            raise ValueError(f"memory read horizon ({H}) must exceed the window ({W})")
        d_max = q0 - min(frames)
        if d_max <= H:
            return true
        if mode == "cap":
            return {f: min(d, float(H)) for f, d in true.items()}
        if mode != "linear":
            raise ValueError(f"read horizon mode must be 'linear' or 'cap', got {mode!r}")
        k = (H - W) / (d_max - W)
        return {f: W + (d - W) * k for f, d in true.items()}

    def set_read_horizon(self, horizon: int | None, mode: str = "linear") -> None:
        """Read compressed memory with frame distances bounded by ``horizon`` latent frames until
        the next commit (``None`` = true distances, the paper; ``mode``: see
        :meth:`memory_read_distances`). Needs the cache's ``rope``."""
        self._mem_rot, self._mem_k = None, {}
        if horizon is None or not self.memory_frames:
            return
        if self.rope is None:
            raise ValueError("set_read_horizon needs a KVCache built with the model's rope")
        dist = self.memory_read_distances(horizon, mode)
        shift = []
        for f, s in self.memory_frames:
            delta = (self.num_frames - f) - dist[f]
            shift += [delta] * frame_tokens(*self.grid, s)
        if not any(abs(x) > 0 for x in shift):
            return
        pos = torch.zeros(len(shift), 3)
        pos[:, 0] = torch.tensor(shift, dtype=torch.float32)
        self._mem_rot = self.rope.cos_sin(pos)

    def read_mask(self, device=None) -> torch.Tensor | None:
        """Bool (n_tokens,) key mask over the held tokens (compressed memory then window; True =
        attended), or None when every held token is read."""
        if self._read_mask is None:
            return None
        if self._read_mask.numel() != self.n_tokens:
            raise RuntimeError("KVCache read mask is stale (the cache changed since set_read_frames)")
        if device is not None and self._read_mask.device != torch.device(device):
            self._read_mask = self._read_mask.to(device)
        return self._read_mask

    # ------------------------------------------------------------------ reading
    def held_kv(self, layer: int):
        """``(k, v, key_mask)`` of the tokens layer ``layer`` holds now (memory keys re-positioned by
        a read horizon, key_mask = :meth:`read_mask`), or None when empty. With autograd on these
        are views that later commits never overwrite (commits are out of place then), which is
        what activation checkpointing needs to recompute a block exactly."""
        n = self.n_tokens
        kb, vb = self.k[layer], self.v[layer]
        if kb is None or n == 0:
            return None
        if not torch.is_grad_enabled():
            raise RuntimeError("KVCache.held_kv is for autograd mode (in-place buffers are reused without it)")
        k = kb[:, :, :n]
        if self._mem_rot is not None:
            c = self.n_comp
            cos, sin = (t.to(device=kb.device, dtype=kb.dtype) for t in self._mem_rot)
            if cos.shape[0] != c:
                raise RuntimeError("KVCache read horizon is stale (the cache changed since set_read_horizon)")
            k = torch.cat([apply_rope(kb[:, :, :c], cos, sin), kb[:, :, c:n]], 2)
        return k, vb[:, :, :n], self.read_mask(kb.device)

    def keys_values(self, layer: int, k_cur: torch.Tensor, v_cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K/V to attend to for the current tokens: cached tokens followed by ``k_cur``/``v_cur``
        (B, heads, m, hd). Does not commit anything."""
        n = self.n_tokens
        kb, vb = self.k[layer], self.v[layer]
        if kb is None or n == 0:
            return k_cur, v_cur
        if kb.shape[0] != k_cur.shape[0]:
            raise ValueError(f"KVCache holds batch {kb.shape[0]}, got {k_cur.shape[0]}")
        m = k_cur.shape[2]
        if self._mem_rot is not None:   # read horizon: memory keys re-positioned, buffer untouched
            c = self.n_comp
            mem_k = self._mem_k.get(layer)
            if mem_k is None:             # once per layer and block (the memory is fixed until commit)
                cos, sin = (t.to(device=kb.device, dtype=kb.dtype) for t in self._mem_rot)
                if cos.shape[0] != c:
                    raise RuntimeError("KVCache read horizon is stale (the cache changed since set_read_horizon)")
                mem_k = apply_rope(kb[:, :, :c], cos, sin)
                if not torch.is_grad_enabled():
                    self._mem_k[layer] = mem_k
            return (torch.cat([mem_k, kb[:, :, c:n], k_cur], 2),
                    torch.cat([vb[:, :, :n], v_cur], 2))
        if torch.is_grad_enabled():
            return torch.cat([kb[:, :, :n], k_cur], 2), torch.cat([vb[:, :, :n], v_cur], 2)
        kb, vb = self._ensure_capacity(layer, n + m)
        kb[:, :, n:n + m].copy_(k_cur)
        vb[:, :, n:n + m].copy_(v_cur)
        return kb[:, :, :n + m], vb[:, :, :n + m]

    def _ensure_capacity(self, layer: int, need: int):
        kb, vb = self.k[layer], self.v[layer]
        if kb.shape[2] >= need:
            return kb, vb
        cap = max(need, 2 * kb.shape[2])
        n = self.n_tokens
        nk = kb.new_empty(kb.shape[0], kb.shape[1], cap, kb.shape[3])
        nv = vb.new_empty(nk.shape)
        nk[:, :, :n].copy_(kb[:, :, :n])
        nv[:, :, :n].copy_(vb[:, :, :n])
        self.k[layer], self.v[layer] = nk, nv
        return nk, nv

    # ------------------------------------------------------------------ writing
    def plan(self, frames: list[int], memory_only: bool = False) -> CommitPlan:
        """Plan committing latent frames ``frames`` (must continue at ``num_frames``). With
        ``memory_only`` the commit only keeps its K/V aside for these frames' later memory entry
        (see the module docstring); the normal commit of the same frames must follow."""
        frames = [int(f) for f in frames]
        if frames != list(range(self.num_frames, self.num_frames + len(frames))):
            raise ValueError(f"KVCache expects frames {self.num_frames}.. in order, got {frames} "
                             f"(pass frame_offset=cache.num_frames)")
        if memory_only:
            return CommitPlan(frames, [], self.n_comp, list(self.window_frames), self.n_comp,
                              list(self.window_frames), memory_only=True)
        win = self.window_frames + frames
        n_ev = max(0, len(win) - self.window)
        evicted = [(f, self.schedule[f % len(self.schedule)] if self.enabled else 0) for f in win[:n_ev]]
        new_comp = self.n_comp + sum(frame_tokens(*self.grid, s) for _, s in evicted if s > 0)
        return CommitPlan(frames, evicted, self.n_comp, list(self.window_frames), new_comp, win[n_ev:])

    def commit(self, layer: int, k_new: torch.Tensor, v_new: torch.Tensor, plan: CommitPlan) -> None:
        """Write layer ``layer``'s K/V (B, heads, len(plan.frames) * gh * gw, hd) per ``plan``."""
        n = self.tokens_per_frame
        if plan.memory_only:
            for j, f in enumerate(plan.frames):
                per_layer = self.aside.setdefault(f, [None] * self.depth)
                per_layer[layer] = (k_new[:, :, j * n:(j + 1) * n], v_new[:, :, j * n:(j + 1) * n])
            return
        kb, vb = self.k[layer], self.v[layer]
        oc, ow = plan.old_comp, len(plan.old_window) * n
        if kb is None:
            win_k, win_v = k_new, v_new
        else:
            win_k = torch.cat([kb[:, :, oc:oc + ow], k_new], 2)
            win_v = torch.cat([vb[:, :, oc:oc + ow], v_new], 2)
        pk, pv = [], []
        for j, (f, s) in enumerate(plan.evicted):
            if s <= 0:
                continue
            fk, fv = win_k[:, :, j * n:(j + 1) * n], win_v[:, :, j * n:(j + 1) * n]
            kept = self.aside.get(f)
            if kept is not None and kept[layer] is not None:   # the memory-only pass's K/V
                fk, fv = (t.to(fk) for t in kept[layer])
            pk.append(self._pool_keys(fk, f, s))
            pv.append(self._pool(fv, s))
        keep = len(plan.evicted) * n
        tail_k = [*pk, win_k[:, :, keep:]]
        tail_v = [*pv, win_v[:, :, keep:]]
        total = plan.new_comp + len(plan.new_window) * n
        if kb is None or torch.is_grad_enabled():
            head_k = [] if kb is None else [kb[:, :, :oc]]
            head_v = [] if vb is None else [vb[:, :, :oc]]
            self.k[layer] = torch.cat([*head_k, *tail_k], 2)
            self.v[layer] = torch.cat([*head_v, *tail_v], 2)
            if not torch.is_grad_enabled():   # first commit in no-grad mode: leave room to grow
                self.k[layer] = self._grow(self.k[layer], total)
                self.v[layer] = self._grow(self.v[layer], total)
            return
        tk, tv = torch.cat(tail_k, 2), torch.cat(tail_v, 2)   # fresh tensors: safe to overwrite source
        kb, vb = self._ensure_capacity(layer, total + 4 * n)
        kb[:, :, oc:total].copy_(tk)
        vb[:, :, oc:total].copy_(tv)

    @staticmethod
    def _grow(t: torch.Tensor, used: int) -> torch.Tensor:
        out = t.new_empty(t.shape[0], t.shape[1], max(2 * used, 64), t.shape[3])
        out[:, :, :used].copy_(t[:, :, :used])
        return out

    def finish(self, plan: CommitPlan) -> None:
        """Update bookkeeping after every layer committed ``plan``."""
        if plan.memory_only:
            return
        for f, _ in plan.evicted:
            self.aside.pop(f, None)
        self.n_comp = plan.new_comp
        self.window_frames = list(plan.new_window)
        self.memory_frames += [(f, s) for f, s in plan.evicted if s > 0]
        self.read_frames, self._read_mask = None, None
        self._mem_rot, self._mem_k = None, {}
        self.num_frames = plan.frames[-1] + 1 if plan.frames else self.num_frames

    # ------------------------------------------------------------------ pooling
    def _pool(self, x: torch.Tensor, s: int) -> torch.Tensor:
        """Average-pool one frame's tokens (B, H, gh*gw, hd) over s x s cells (valid cells only)."""
        if s == 1:
            return x
        B, H, _, hd = x.shape
        gh, gw = self.grid
        ph, pw = pooled_grid(gh, gw, s)
        g = x.reshape(B * H, gh, gw, hd).permute(0, 3, 1, 2)
        g = F.pad(g, (0, pw * s - gw, 0, ph * s - gh))
        summed = F.avg_pool2d(g, s, divisor_override=1)
        cnt = self._counts(s, x.device, x.dtype)
        out = summed / cnt
        return out.permute(0, 2, 3, 1).reshape(B, H, ph * pw, hd)

    def _counts(self, s: int, device, dtype) -> torch.Tensor:
        gh, gw = self.grid
        ph, pw = pooled_grid(gh, gw, s)
        ones = torch.zeros(1, 1, ph * s, pw * s, device=device, dtype=dtype)
        ones[:, :, :gh, :gw] = 1
        return F.avg_pool2d(ones, s, divisor_override=1)

    def pooled_positions(self, frame: int, s: int) -> torch.Tensor:
        """(ceil(gh/s)*ceil(gw/s), 3) mean (frame, row, col) positions of a frame pooled by ``s``."""
        gh, gw = self.grid
        pos = grid_positions(torch.tensor([frame]), gh, gw)  # (gh*gw, 3)
        p = pos.reshape(1, 1, gh * gw, 3)
        return self._pool(p, s).reshape(-1, 3)

    def _pool_keys(self, k: torch.Tensor, frame: int, s: int) -> torch.Tensor:
        if s == 1 or self.rope is None:
            return self._pool(k, s)
        gh, gw = self.grid
        cos, sin = self.rope.cos_sin(grid_positions(torch.tensor([frame]), gh, gw).to(k.device), k.dtype)
        raw = apply_rope(k, cos, sin, inverse=True)
        pooled = self._pool(raw, s)
        pcos, psin = self.rope.cos_sin(self.pooled_positions(frame, s).to(k.device), k.dtype)
        return apply_rope(pooled, pcos, psin)


__all__ = ["KVCache", "CommitPlan", "wants_clean_memory_pass", "select_memory_frames", "pose_scores", "kv_token_counts", "history_token_counts", "latent_frames_for_seconds",
           "frame_tokens", "pooled_grid"]
