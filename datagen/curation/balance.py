"""Action balance: per-channel statistics and optional rebalancing by sampling weights.

Definitions (channels in ``format.ACTION_CHANNELS`` order; labels from ``datagen.actions``):
    active(t, c)      label[t, c] > active_threshold (default 0.1 label units)
    active_fraction   per episode and channel: mean of active(t, c) over the episode's KEPT frames
    corpus frequency  p_c = kept-frame-weighted mean of active_fraction over kept/trimmed episodes

Rebalancing (config ``balance.rebalance: true``): episode sampling weights w >= w_min solving
    min_w || A^T w / sum(w) - u ||_2   (A: episodes x channels active fractions, u uniform 1/13)
by non-negative least squares, then scaled to mean 1. Loaders sample episodes with probability
proportional to the manifest's ``sample_weight`` (1.0 for every episode when rebalancing is off,
0 for rejected episodes). :func:`channel_stats` reports the before/after channel distribution.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
from scipy.optimize import nnls

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


def rebalance_weights(fractions: np.ndarray, w_min: float = 0.05) -> np.ndarray:
    """Sampling weights (mean 1) that bring the weighted channel distribution closest to uniform.

    fractions: (E, 13) active fractions per episode. Episodes with no activity get w_min.
    """
    A = np.asarray(fractions, dtype=np.float64)
    E = len(A)
    if E == 0:
        return np.zeros(0)
    rows = A.sum(axis=1)
    norm = np.where(rows[:, None] > 0, A / np.maximum(rows[:, None], 1e-12), 0.0)  # per-episode distribution
    target = np.full(A.shape[1], 1.0 / A.shape[1])
    # min || norm^T w - target * sum(w) || with sum(w) fixed to 1 via an extra heavy row
    M = np.vstack([norm.T - target[:, None], 10.0 * np.ones((1, E))])
    b = np.concatenate([np.zeros(A.shape[1]), [10.0]])
    w, _ = nnls(M, b)
    w = np.maximum(w, w_min / E)
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


def manifest_weights(manifest: pd.DataFrame, rebalance: bool, w_min: float = 0.05) -> np.ndarray:
    """sample_weight column for a manifest that has FRACTION_COLUMNS and status."""
    usable = (manifest["status"] != "rejected").to_numpy()
    w = usable.astype(np.float64)
    if rebalance and usable.any():
        w[usable] = rebalance_weights(manifest.loc[usable, list(FRACTION_COLUMNS)].to_numpy(), w_min)
    return w


def sample_episodes(manifest: pd.DataFrame, n: int, seed: int) -> list[str]:
    """n episode ids drawn with replacement, probability proportional to sample_weight."""
    w = manifest["sample_weight"].to_numpy(np.float64)
    if w.sum() <= 0:
        raise ValueError("no episode has a positive sample_weight (all rejected?)")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(manifest), size=n, replace=True, p=w / w.sum())
    return manifest["episode_id"].to_numpy()[idx].tolist()
