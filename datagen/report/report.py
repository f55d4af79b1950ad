"""Curation report of a corpus: Markdown (report.md) plus PNG plots and a summary.json.

Contents
    counts (episodes by status / split / family / generator), minutes captured and kept, reject
    and trim reasons (episodes per reason) and per-filter flagged frames, the action histogram
    (per-channel active frequency, as captured and as sampled with inverse-frequency weights), the
    clip-length histogram (captured duration and kept seconds per episode), top-down trajectory
    maps per scene (x/y of every episode's camera, kept frames solid, removed frames grey, over
    the scene's solids between 0.3 m and 2 m height when the scene can be regenerated) and
    sample frames with their first caption.

Definitions: "kept seconds" = frames inside kept segments / fps; "active" as in
:mod:`datagen.curation.balance` (label > the corpus's balance.active_threshold).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from datagen.atomic import atomic_write, atomic_write_text
from datagen.corpus import format as F
from datagen.corpus.reader import Corpus
from datagen.curation.balance import FRACTION_COLUMNS, rebalance_weights
from datagen.scenes.library import FAMILIES, generate_scene


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, bbox_inches="tight"), suffix=path.suffix)
    _plt().close(fig)


def _table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def _draw_obstacles(ax, family: str, seed: int) -> None:
    """Faint top-down outline of a procedural scene's solids between 0.3 m and 2 m height."""
    try:
        if family not in FAMILIES:
            return
        col = generate_scene(family, int(seed)).colliders
    except Exception:  # scene not reproducible here (e.g. an Unreal level): trajectories only
        return
    from matplotlib.patches import Circle, Polygon

    for c, h, yaw in zip(col.box_c, col.box_h, col.box_yaw):
        if c[2] + h[2] < 0.3 or c[2] - h[2] > 2.0:
            continue
        R = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * h[:2]
        ax.add_patch(Polygon(corners @ R.T + c[:2], closed=True, fc="0.85", ec="0.6", lw=0.3, zorder=0))
    for b, r, hh in zip(col.cyl_b, col.cyl_r, col.cyl_h):
        if b[2] + hh >= 0.3 and b[2] <= 2.0:
            ax.add_patch(Circle(b[:2], r, fc="0.85", ec="0.6", lw=0.3, zorder=0))


def summarize(corpus) -> dict:
    """Numbers of the report (also written to summary.json)."""
    m = corpus.manifest
    fps = m["fps"].astype(float)
    reasons: Counter = Counter()
    trims: Counter = Counter()
    for v in m["reject_reasons"].fillna(""):
        reasons.update([r for r in str(v).split("|") if r])
    for v in m["trim_reasons"].fillna(""):
        trims.update([r for r in str(v).split("|") if r])
    usable = m[m.status != "rejected"]
    return {
        "episodes": int(len(m)),
        "status": {k: int(v) for k, v in m["status"].value_counts().items()},
        "split_episodes": {k: int(v) for k, v in usable["split"].value_counts().items()},
        "split_scenes": {k: int(v) for k, v in m.groupby("split")["scene_id"].nunique().items()},
        "families": {k: int(v) for k, v in m["family"].value_counts().items()},
        "generators": {k: int(v) for k, v in m["generator"].value_counts().items()},
        "scenes": int(m["scene_id"].nunique()),
        "frames": int(m["num_frames"].sum()),
        "minutes_captured": float((m["num_frames"] / fps).sum() / 60.0),
        "minutes_kept": float(m["kept_s"].sum() / 60.0),
        "reject_reasons": dict(reasons.most_common()),
        "trim_reasons": dict(trims.most_common()),
        "revisit_pairs": int(m["num_revisit_pairs"].sum()),
        "episodes_with_revisits": int((m["num_revisit_pairs"] > 0).sum()),
        "clip_seconds_kept": {"mean": float(usable["kept_s"].mean()) if len(usable) else 0.0,
                              "median": float(usable["kept_s"].median()) if len(usable) else 0.0,
                              "max": float(usable["kept_s"].max()) if len(usable) else 0.0},
    }


def write_report(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                 max_maps: int = 60, samples: int = 6) -> Path:
    """Write the report into `out_dir` (default CORPUS/report); returns the report.md path.

    All-or-nothing: the report is assembled in a temporary sibling folder and its files are moved
    into `out_dir` only once every one of them is written, so a failure (e.g. a damaged corpus file)
    leaves the previous report, or none, and never a half-written one. Other files in `out_dir`
    are left alone.
    """
    import shutil

    c = Corpus.open(corpus_dir)
    final = Path(out_dir) if out_dir is not None else Path(corpus_dir) / "report"
    if final.exists() and not final.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_report_into(c, tmp, max_maps, samples)
        final.mkdir(exist_ok=True)
        for f in sorted(tmp.iterdir(), key=lambda p: p.name == "report.md"):  # report.md last
            os.replace(f, final / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / "report.md"


def _write_report_into(c, out: Path, max_maps: int, samples: int) -> None:
    plt = _plt()
    m = c.manifest
    s = summarize(c)
    usable = m[m.status != "rejected"]

    # per-filter flagged frames (from episode metadata)
    flagged: Counter = Counter()
    metas = {}
    for eid in m.episode_id:
        p = c.path / F.EPISODES_DIR / eid / F.EPISODE_JSON
        meta = json.loads(p.read_text())
        metas[eid] = meta
        flagged.update(meta.get("curation", {}).get("reasons", {}))
    s["flagged_frames"] = {k: int(flagged.get(k, 0)) for k in F.FILTER_NAMES}

    # action histogram
    fr = usable[list(FRACTION_COLUMNS)].to_numpy(float) if len(usable) else np.zeros((0, 13))

    k = usable["kept_frames"].to_numpy(float)
    wts = rebalance_weights(fr, float(c.config.get("balance", {}).get("power", 1.0))) if len(fr) else np.zeros(0)
    freq = (fr * k[:, None]).sum(0) / max(k.sum(), 1)
    bal = (fr * (wts * k)[:, None]).sum(0) / max((wts * k).sum(), 1e-12)
    s["action_frequency"] = dict(zip(F.ACTION_CHANNELS, map(float, freq)))
    s["action_frequency_rebalanced"] = dict(zip(F.ACTION_CHANNELS, map(float, bal)))
    s["rebalance_enabled"] = bool(c.config.get("balance", {}).get("rebalance", False))
    fig, ax = plt.subplots(figsize=(9, 3.2))
    x = np.arange(13)
    ax.bar(x - 0.2, freq, 0.4, label="captured (kept frames)")
    ax.bar(x + 0.2, bal, 0.4, label="sampled with inverse-frequency weights (balance.rebalance)")
    ax.set_xticks(x, F.ACTION_CHANNELS, rotation=45, ha="right")
    ax.set_ylabel("fraction of frames active")
    ax.set_title("Action channels")
    ax.legend()
    _save(fig, out / "actions.png")

    # clip-length histogram
    fig, ax = plt.subplots(figsize=(6, 3.2))
    dur = (m["num_frames"] / m["fps"]).to_numpy(float)
    bins = np.linspace(0, max(1.0, dur.max() if len(dur) else 1.0), 16)
    ax.hist(dur, bins=bins, alpha=0.5, label="captured")
    ax.hist(usable["kept_s"].to_numpy(float), bins=bins, alpha=0.7, label="kept (non-rejected episodes)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("episodes")
    ax.set_title("Clip lengths")
    ax.legend()
    _save(fig, out / "clip_lengths.png")

    # reasons
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(list(F.FILTER_NAMES), [s["flagged_frames"][n] for n in F.FILTER_NAMES])
    ax.set_xlabel("flagged frames")
    ax.set_title("Curation filters")
    _save(fig, out / "filters.png")

    # top-down maps per scene
    maps = []
    for sid in sorted(m.scene_id.unique())[:max_maps]:
        rows = m[m.scene_id == sid]
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
        _draw_obstacles(ax, rows.family.iloc[0], rows.scene_seed.iloc[0])
        lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
        for _, r in rows.iterrows():
            ep = c.episode(r.episode_id)
            p = ep.poses()[:, :3, 3]
            kept = ep.kept_mask()
            ax.plot(p[:, 0], p[:, 1], color="0.8", lw=1)
            pk = np.where(kept[:, None], p, np.nan)
            ax.plot(pk[:, 0], pk[:, 1], lw=1.5, label=f"{r.generator} ({r.status})")
            ax.plot(p[0, 0], p[0, 1], "k^", ms=5)
            lo, hi = np.minimum(lo, p[:, :2].min(0)), np.maximum(hi, p[:, :2].max(0))
        mid, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 + 2.0, 3.0)  # trajectories + 2 m
        ax.set_xlim(mid[0] - half, mid[0] + half)
        ax.set_ylim(mid[1] - half, mid[1] + half)
        ax.set_aspect("equal")
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.set_title(f"{sid} [{rows.split.iloc[0]}]", fontsize=9)
        ax.legend(fontsize=6, loc="best")
        name = f"map_{sid}.png"
        _save(fig, out / name)
        maps.append(name)

    # sample frames
    pick = usable.drop_duplicates("family").head(samples) if len(usable) else m.head(samples)
    sample_lines = []
    if len(pick):
        fig, axes = plt.subplots(len(pick), 3, figsize=(9, 1.9 * len(pick)), squeeze=False)
        for row, (_, r) in zip(axes, pick.iterrows()):
            ep = c.episode(r.episode_id)
            kept = np.flatnonzero(ep.kept_mask())
            if not len(kept):
                kept = np.arange(ep.num_frames)
            for ax, i in zip(row, (kept[0], kept[len(kept) // 2], kept[-1])):  # first / middle / last kept
                ax.imshow(ep.rgb(i))
                ax.set_title(f"{r.episode_id} f{i}", fontsize=6)
                ax.axis("off")
            sample_lines.append(f"- `{r.episode_id}`: {ep.captions[0]['text'] if ep.captions else ''}")
        _save(fig, out / "samples.png")

    atomic_write_text(out / "summary.json", json.dumps(s, indent=1))

    counts = pd.DataFrame([{"status": k, "episodes": v} for k, v in s["status"].items()])
    split = pd.DataFrame([{"split": sp, "scenes": s["split_scenes"].get(sp, 0),
                           "usable episodes": s["split_episodes"].get(sp, 0)} for sp in ("train", "val", "test")])
    gens = pd.DataFrame([{"generator": g, "episodes": v} for g, v in s["generators"].items()])
    reasons = pd.DataFrame([{"filter": n, "flagged frames": s["flagged_frames"][n],
                             "episodes rejected for it": s["reject_reasons"].get(n, 0),
                             "episodes trimmed for it": s["trim_reasons"].get(n, 0)} for n in F.FILTER_NAMES])
    md = [f"# Curation report: {Path(c.path).name}", "",
          f"Corpus `{c.path}` (schema {c.header['schema']} v{c.header['schema_version']}, config "
          f"`{c.config.get('name', '?')}`, hash {c.header['config_hash'][:12]}, created {c.header.get('created', '?')}).",
          f"Regenerate: `relic datagen build --config CONFIG --out CORPUS` then `relic datagen report CORPUS`"
          f"{' (CONFIG = datagen/configs/default_corpus.yaml, the default when --config is omitted)' if c.config.get('name') == 'default' else ''}.", "",
          f"- episodes: {s['episodes']} in {s['scenes']} scenes ({', '.join(f'{k} {v}' for k, v in s['families'].items())})",
          f"- frames: {s['frames']}; minutes captured {s['minutes_captured']:.2f}, kept {s['minutes_kept']:.2f}",
          f"- revisit pairs: {s['revisit_pairs']} in {s['episodes_with_revisits']} episodes",
          f"- kept clip seconds: mean {s['clip_seconds_kept']['mean']:.1f}, median "
          f"{s['clip_seconds_kept']['median']:.1f}, max {s['clip_seconds_kept']['max']:.1f}", "",
          "## Status", "", _table(counts) if len(counts) else "(none)", "",
          "## Splits (by scene)", "", _table(split), "",
          "## Generators", "", _table(gens) if len(gens) else "(none)", "",
          "## Curation filters and reasons", "", _table(reasons), "", "![filters](filters.png)", "",
          "## Action histogram", "",
          f"Fraction of kept frames in which each channel is active (label > balance.active_threshold), as "
          f"captured and as sampled with inverse-frequency episode weights (`balance.rebalance` is "
          f"{'on' if s['rebalance_enabled'] else 'off'} in this corpus's config).", "", "![actions](actions.png)", "",
          "## Clip lengths", "", "![clip lengths](clip_lengths.png)", "",
          "## Top-down trajectory maps", "",
          *[f"![{n}]({n})" for n in maps], "",
          "## Sample frames", "", "![samples](samples.png)" if sample_lines else "(none)", "", *sample_lines, ""]
    atomic_write_text(out / "report.md", "\n".join(md))  # (the folder itself is already a temporary one)
    return out / "report.md"
