"""Action balance: per-channel statistics and optional rebalancing by sampling weights.

Definitions (channels in ``format.ACTION_CHANNELS`` order; labels from ``datagen.actions``):
    active(t, c)      label[t, c] > active_threshold (default 0.1 label units)
    active_fraction   per episode and channel: mean of active(t, c) over the episode's KEPT frames
    corpus frequency  p_c = kept-frame-weighted mean of active_fraction over kept/trimmed episodes

Rebalancing (config ``balance.rebalance: true``): inverse-frequency episode sampling weights
    q_e = episode e's channel distribution (its active fractions normalised to sum 1)
    p   = mean of q_e over usable episodes (the corpus's channel distribution)
    w_e = (sum_c q_ec / p_c) ** power       (power = balance.power, default 1), scaled to mean 1
With power 1 a corpus of single-channel episodes becomes exactly uniform over its channels;
mixed episodes are balanced partly, and every episode keeps a positive weight (no episode is
dropped, unlike an exact least-squares fit, which concentrates weight on a few episodes).
Loaders sample episodes with probability proportional to the manifest's ``sample_weight``
(1.0 for every usable episode when rebalancing is off, 0 for rejected episodes).
:func:`channel_stats` reports the channel distribution before and after weighting.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from datagen.corpus.format import ACTION_CHANNELS

FRACTION_COLUMNS = tuple(f"frac_{c}" for c in ACTION_CHANNELS)  # manifest columns (format.MANIFEST_COLUMNS)


def active_fractions(actions: np.ndarray, kept: Optional[np.ndarray] = None, active_threshold: float = 0.1) -> dict:
    """{channel: fraction of (kept) frames where that channel is active}."""
    a = np.asarray(actions, dtype=np.float64)
    if kept is not None:
        a = a[np.asarray(kept, bool)]
    if len(a) == 0:
        return {c: 0.0 for c in ACTION_CHANNELS}
    act = (a > active_threshold).mean(axis=0)
    return {c: float(act[i]) for i, c in enumerate(ACTION_CHANNELS)}


def rebalance_weights(fractions: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Inverse-frequency sampling weights (mean 1); see the module docstring.

    fractions: (E, 13) active fractions per episode. Episodes with no active channel get the
    mean weight of the others (1 if none is active anywhere).
    """
    A = np.asarray(fractions, dtype=np.float64)
    E = len(A)
    if E == 0:
        return np.zeros(0)
    rows = A.sum(axis=1)
    active = rows > 0
    if not active.any():
        return np.ones(E)
    q = np.where(active[:, None], A / np.maximum(rows[:, None], 1e-12), 0.0)
    p = q[active].mean(axis=0)
    inv = np.where(p > 0, 1.0 / np.maximum(p, 1e-12), 0.0)
    w = np.zeros(E)
    w[active] = (q[active] @ inv) ** float(power)
    w[~active] = w[active].mean()
    return w / w.mean()


def channel_stats(fractions: np.ndarray, kept_frames: np.ndarray, weights: Optional[np.ndarray] = None) -> pd.DataFrame:
    """Per-channel frequency over the corpus: unweighted (by kept frames) and, if `weights`
    is given, as sampled with those weights. Columns: channel, frequency, balanced_frequency."""
    A = np.asarray(fractions, dtype=np.float64)
    k = np.asarray(kept_frames, dtype=np.float64)
    freq = (A * k[:, None]).sum(axis=0) / max(k.sum(), 1.0)
    out = pd.DataFrame({"channel": list(ACTION_CHANNELS), "frequency": freq})
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        out["balanced_frequency"] = (A * w[:, None]).sum(axis=0) / max(w.sum(), 1e-12)
    return out


def manifest_weights(manifest: pd.DataFrame, rebalance: bool, power: float = 1.0) -> np.ndarray:
    """sample_weight column for a manifest that has FRACTION_COLUMNS and status."""
    usable = (manifest["status"] != "rejected").to_numpy()
    w = usable.astype(np.float64)
    if rebalance and usable.any():
        w[usable] = rebalance_weights(manifest.loc[usable, list(FRACTION_COLUMNS)].to_numpy(), power)
    return w


def sample_episodes(manifest: pd.DataFrame, n: int, seed: int) -> list[str]:
    """n episode ids drawn with replacement, probability proportional to sample_weight."""
    w = manifest["sample_weight"].to_numpy(np.float64)
    if w.sum() <= 0:
        raise ValueError("no episode has a positive sample_weight (all rejected?)")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(manifest), size=n, replace=True, p=w / w.sum())
    return manifest["episode_id"].to_numpy()[idx].tolist()
