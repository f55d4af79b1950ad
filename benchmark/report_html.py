"""Self-contained HTML report of a benchmark run (``OUT/report.html``).

Everything is inline: CSS in a <style> block, every image a base64 PNG data URI (matplotlib figures
rendered with the Agg backend, revisit strips read from ``OUT/strips``); no scripts, no external URL.
Sections: leaderboard (our rows, then the paper's Table 2 rows marked "reported by the paper,
different test set"), metric validity (expected orderings, PASS/FAIL), metric-vs-time curves,
estimated vs commanded trajectories (top-down), revisit strips (GT | first visit | revisit) per
model, per-family tables, and models that could not run.

The report is rebuilt from the run directory alone: ``write_report(OUT)``.
"""
from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.leaderboard import (FIRST_VIEW_COLUMNS, FIRST_VIEW_NOTE, LONG_COLUMNS, MAIN_COLUMNS, NOISE_FLOOR_MODEL, aggregate, fmt, is_reference,
                                   load_results, load_run_info, lpips_note, model_sort_key)
from benchmark.paper_results import PAPER_LABEL, PAPER_SOURCE, paper_table

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1280px;
color:#1d1d1f;padding:0 16px;line-height:1.45}
h1{font-size:26px}h2{font-size:20px;margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:16px;margin-top:22px}
table{border-collapse:collapse;margin:8px 0 16px 0;font-size:13px}
th,td{border:1px solid #d0d0d0;padding:4px 8px;text-align:right}
th{background:#f3f3f6}td:first-child,th:first-child{text-align:left}
tr.ref td:first-child{color:#555}tr.floor td{background:#fafae8}
tr.paper td{background:#f4f0fa;font-style:italic}
.pass{color:#0a7d28;font-weight:600}.fail{color:#b00020;font-weight:600}
.note{color:#555;font-size:13px}.strip{margin:4px 0 12px 0}
img{max-width:100%;image-rendering:pixelated}
figure{margin:8px 0 18px 0}figcaption{font-size:12px;color:#555}
code{background:#f3f3f6;padding:1px 4px;border-radius:3px}
"""


def _b64_png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _fig_png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return _b64_png(buf.getvalue())


def _img(src: str, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img src="{src}" alt="{html.escape(alt)}"{w}>'


def _label(model: str) -> str:
    if model == NOISE_FLOOR_MODEL:
        return "estimator noise floor (GT frames)"
    return f"{model} (ref)" if is_reference(model) else model


def _html_table(agg: pd.DataFrame, columns) -> str:
    arrow = {+1: " ↑", -1: " ↓", 0: ""}
    out = ["<table><thead><tr><th>model</th>"]
    out += [f"<th>{html.escape(h + arrow[d])}</th>" for _, h, d in columns]
    out.append("</tr></thead><tbody>")
    for model, row in agg.iterrows():
        cls = "floor" if model == NOISE_FLOOR_MODEL else ("ref" if is_reference(model) else "")
        out.append(f'<tr class="{cls}"><td>{html.escape(_label(model))}</td>')
        out += [f"<td>{html.escape(fmt(row.get(m, float('nan')), m))}</td>" for m, _, _ in columns]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _paper_html() -> str:
    p = paper_table()
    out = ["<table><thead><tr><th>model</th><th>source</th><th>VBench avg ↑</th><th>imaging q. ↑</th>"
           "<th>aesthetic ↑</th><th>RPE-trans ↓</th><th>RPE-rot ↓</th></tr></thead><tbody>"]
    for _, r in p.iterrows():
        out.append(f'<tr class="paper"><td>{html.escape(r["model"])}</td><td>{html.escape(PAPER_LABEL)}</td>'
                   f'<td>{r["vbench_avg"]:.4f}</td><td>{r["imaging_quality"]:.4f}</td>'
                   f'<td>{r["aesthetic_quality"]:.4f}</td><td>{r["rpe_trans"]:.4f}</td><td>{r["rpe_rot"]:.2f}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _model_dirs(run_dir: Path, sub: str) -> dict[str, Path]:
    d = run_dir / sub
    return {p.name: p for p in sorted(d.iterdir())} if d.is_dir() else {}


def _slug_to_model(df: pd.DataFrame) -> dict[str, str]:
    from benchmark.harness import slug

    return {slug(m): m for m in df["model"].unique()}


def _curve_series(curves: dict) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, t_seconds, values) for every time curve in a TaskScore.curves npz.

    A curve ``X`` is plotted against ``X_t_s`` if present, else against the first key ending in
    ``t_s`` whose length matches (e.g. the drift windows' centre times)."""
    times = {k: np.asarray(v) for k, v in curves.items() if k.endswith("t_s") or k in ("t", "time_s")}
    out = []
    for k, v in curves.items():
        if k in times:
            continue
        v = np.asarray(v, dtype=np.float64)
        if v.ndim != 1 or v.size < 2:
            continue
        t = curves.get(f"{k}_t_s")
        if t is None:
            t = next((tv for tv in times.values() if tv.shape == v.shape), None)
        if t is None:
            continue
        out.append((k, np.asarray(t, dtype=np.float64), v))
    return out


def curves_section(run_dir: Path, df: pd.DataFrame, info: dict, max_tasks: int = 3) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cdirs = _model_dirs(run_dir, "curves")
    if not cdirs:
        return "<p class='note'>No curves were written by this run.</p>"
    names = _slug_to_model(df)
    tasks = info.get("tasks", [])
    # long-horizon tasks first, then the longest others
    tasks = sorted(tasks, key=lambda t: (not t["family"].startswith("long"), -t["num_frames"]))[:max_tasks]
    html_parts = []
    for t in tasks:
        per_model = {}
        for s, d in cdirs.items():
            f = d / f"{t['task_id']}.npz"
            if f.exists():
                with np.load(f) as z:
                    per_model[names.get(s, s)] = _curve_series({k: z[k] for k in z.files})
        keys = []
        for series in per_model.values():
            for k, _, _ in series:
                if k not in keys:
                    keys.append(k)
        def has_data(k):
            return any(np.isfinite(vv).any() for series in per_model.values() for name, _, vv in series if name == k)

        keys = [k for k in ("psnr", "ssim", "lpips", "sharpness", "luma_mean") if k in keys and has_data(k)][:4]
        if not keys:
            continue
        fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.1), squeeze=False)
        for ax, k in zip(axes[0], keys):
            for model in sorted(per_model, key=model_sort_key):
                if model.startswith("noisy-oracle") and len(per_model) > 1:
                    continue  # corrupted references live in the validity section
                for name, tt, vv in per_model[model]:
                    if name == k and np.isfinite(vv).any():
                        ax.plot(tt, vv, label=model, lw=1.4)
            ax.set_title(k, fontsize=10)
            ax.set_xlabel("time (s)")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7, loc="best")
        fig.suptitle(f"{t['task_id']} ({t['family']}, {t['num_frames'] / t['fps']:.0f} s)", fontsize=11, y=1.04)
        html_parts.append(f"<figure>{_img(_fig_png(fig), 'curves ' + t['task_id'])}"
                          f"<figcaption>Metric vs time on {html.escape(t['task_id'])} "
                          f"(per-window values against ground truth / no-reference statistics).</figcaption></figure>")
    return "".join(html_parts) or "<p class='note'>No time curves in this run.</p>"


def _umeyama_sim3(src: np.ndarray, dst: np.ndarray):
    """Sim(3) (s, R, t) minimising ||dst - (s R src + t)||^2 (Umeyama 1991), src/dst (N, 3)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    var = (xs ** 2).sum() / len(src)
    s = float(np.trace(np.diag(D) @ S) / var) if var > 1e-12 else 1.0
    return s, R, mu_d - s * R @ mu_s


def trajectories_section(run_dir: Path, df: pd.DataFrame, info: dict, max_tasks: int = 4) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tdirs = _model_dirs(run_dir, "trajectories")
    if not tdirs:
        return "<p class='note'>No estimated trajectories were written by this run.</p>"
    names = _slug_to_model(df)
    models = sorted(tdirs, key=lambda s: model_sort_key(names.get(s, s)))
    models = [s for s in models if not names.get(s, s).startswith("noisy-oracle")] or models
    tasks = info.get("tasks", [])

    def path_length(t) -> float:  # metres travelled by the commanded camera (0 for pure rotations)
        for s in models:
            f = tdirs[s] / f"{t['task_id']}.npz"
            if f.exists():
                with np.load(f) as z:
                    p = z["gt_poses"][:, :3, 3]
                return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())
        return 0.0

    # tasks that move the camera (a pure rotation is a point from above), longest paths first,
    # one per family
    seen, pick = set(), []
    for t in sorted(tasks, key=lambda t: -path_length(t)):
        if t["family"] not in seen and path_length(t) > 0.2:
            seen.add(t["family"])
            pick.append(t)
    parts = []
    for t in pick[:max_tasks]:
        fig, axes = plt.subplots(1, len(models), figsize=(3.0 * len(models), 3.0), squeeze=False)
        for ax, s in zip(axes[0], models):
            f = tdirs[s] / f"{t['task_id']}.npz"
            ax.set_title(names.get(s, s), fontsize=9)
            ax.set_aspect("equal", adjustable="box")
            ax.grid(alpha=0.3)
            if not f.exists():
                ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
                continue
            with np.load(f) as z:
                est, gt = z["est_poses"], z["gt_poses"]
            pg, pe = gt[:, :3, 3], est[:, :3, 3]
            ok = np.isfinite(pe).all(1)
            if ok.sum() >= 3:  # plot the estimate Sim(3)-aligned to the commanded trajectory
                sc, R, tr = _umeyama_sim3(pe[ok], pg[ok])
                pe = (sc * (R @ pe.T)).T + tr
            allp = np.concatenate([pg[:, :2], pe[ok, :2]]) if ok.any() else pg[:, :2]
            c = 0.5 * (allp.min(0) + allp.max(0))
            half = max(0.25, 0.55 * float(np.max(allp.max(0) - allp.min(0))))
            ax.set_xlim(c[0] - half, c[0] + half)
            ax.set_ylim(c[1] - half, c[1] + half)
            ax.ticklabel_format(useOffset=False)
            ax.plot(pg[:, 0], pg[:, 1], "-", color="#222", lw=1.6, label="commanded (GT)")
            ax.plot(pe[ok, 0], pe[ok, 1], "-", color="#d9480f", lw=1.2, label="estimated")
            ax.plot(pg[0, 0], pg[0, 1], "o", color="#222", ms=4)
            ax.tick_params(labelsize=7)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{t['task_id']} ({t['family']}): top-down x/y (m)", fontsize=10, y=1.05)
        parts.append(f"<figure>{_img(_fig_png(fig), 'trajectories ' + t['task_id'])}</figure>")
    return "".join(parts) + ("<p class='note'>Estimated camera centres (pose estimator on each model's frames), "
                             "Sim(3)-aligned to the commanded trajectory as for RPE; world x/y from above. "
                             "Pure rotations show as a point.</p>")


def strips_section(run_dir: Path, df: pd.DataFrame, info: dict, max_tasks: int = 4) -> str:
    sdirs = _model_dirs(run_dir, "strips")
    if not sdirs:
        return "<p class='note'>No revisit pairs in this run's tasks.</p>"
    names = _slug_to_model(df)
    models = sorted(sdirs, key=lambda s: model_sort_key(names.get(s, s)))
    tasks = [t for t in info.get("tasks", []) if any((sdirs[s] / f"{t['task_id']}.png").exists() for s in models)]
    tasks = sorted(tasks, key=lambda t: not t["family"].startswith("revisit"))[:max_tasks]
    parts = []
    for t in tasks:
        parts.append(f"<h3>{html.escape(t['task_id'])} <span class='note'>({html.escape(t['family'])})</span></h3>"
                     "<table><thead><tr><th>model</th><th style='text-align:left'>ground truth (revisit) | "
                     "model, first visit | model, revisit</th></tr></thead><tbody>")
        for s in models:
            f = sdirs[s] / f"{t['task_id']}.png"
            if f.exists():
                parts.append(f"<tr><td>{html.escape(_label(names.get(s, s)))}</td><td style='text-align:left'>"
                             f"{_img(_b64_png(f.read_bytes()), 'strip ' + s, width=min(3 * t['width'] * 2, 960))}"
                             f"</td></tr>")
        parts.append("</tbody></table>")
    return "".join(parts)


def validity_section(df: pd.DataFrame) -> str:
    from benchmark.report_validity import validity_checks

    checks = validity_checks(df)
    if not checks:
        return ("<p class='note'>No validity checks apply: run the reference baselines "
                "(<code>--models oracle,static,reproject,validity</code>).</p>")
    n_ok = sum(c.passed for c in checks)
    out = [f"<p>{n_ok} of {len(checks)} expected orderings hold.</p>",
           "<table><thead><tr><th>check</th><th>result</th><th style='text-align:left'>values (task means)</th>"
           "</tr></thead><tbody>"]
    for c in checks:
        cls, word = ("pass", "PASS") if c.passed else ("fail", "FAIL")
        out.append(f"<tr><td>{html.escape(c.description)}</td><td class='{cls}'>{word}</td>"
                   f"<td style='text-align:left'>{html.escape(c.values_text)}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def report_html(run_dir: Path) -> str:
    """The report's HTML text for a run directory."""
    run_dir = Path(run_dir)
    df = load_results(run_dir)
    info = load_run_info(run_dir)
    tasks = info.get("tasks", [])
    title = f"relic-suite benchmark report: suite {info.get('suite', '?')}"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    if tasks:
        fams = sorted({t["family"] for t in tasks})
        parts.append(f"<p>{len(tasks)} tasks on held-out (test-split) scenes; families: {html.escape(', '.join(fams))}; "
                     f"{sum(t['num_frames'] for t in tasks)} frames in all. Run finished "
                     f"{html.escape(str(info.get('finished_utc', '?')))} in {info.get('wall_s', float('nan')):.1f} s "
                     f"on {info.get('cpu_count', '?')} CPU(s); pose estimator <code>{html.escape(str(info.get('estimator', '?')))}</code>.</p>")
    parts.append("<p class='note'>Means over tasks. ↑ higher is better, ↓ lower is better. \"(ref)\" marks reference "
                 "baselines that read ground truth. PSNR is capped at 60 dB (identical images score 60). "
                 "RPE over 1-s segments (16 frames) after Sim(3) alignment to the commanded trajectory.</p>")
    note = lpips_note(df)
    if note:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    parts.append("<h2>Leaderboard</h2>" + _html_table(aggregate(df), MAIN_COLUMNS))
    parts.append(f"<h3>Reported by the paper, different test set</h3><p class='note'>{html.escape(PAPER_SOURCE)}. "
                 f"These rows are <b>{html.escape(PAPER_LABEL)}</b>: not comparable with ours; the paper reports no "
                 "memory metrics.</p>" + _paper_html())
    fams = sorted(df["family"].dropna().unique())
    long_f = [f for f in fams if f.startswith("long")]
    if long_f:
        parts.append("<h3>Long-horizon tasks</h3>" + _html_table(aggregate(df, families=long_f),
                                                                 LONG_COLUMNS + [MAIN_COLUMNS[2], MAIN_COLUMNS[0]]))
    if "rpe_trans@first_view" in df["metric"].unique():
        parts.append(f"<h3>Action following in the first view</h3><p class='note'>{html.escape(FIRST_VIEW_NOTE)}</p>"
                     + _html_table(aggregate(df), FIRST_VIEW_COLUMNS))
    parts.append("<h2>Metric validity</h2>" + validity_section(df))
    parts.append("<h2>Metrics over time</h2>" + curves_section(run_dir, df, info))
    parts.append("<h2>Estimated vs commanded trajectories</h2>" + trajectories_section(run_dir, df, info))
    parts.append("<h2>Revisit strips</h2><p class='note'>Per model, the task's widest-gap revisit pair: "
                 "ground truth at the revisit | the model's frame at the first visit | the model's frame at the "
                 "revisit. A model with spatial memory shows the same content in the last two panels.</p>"
                 + strips_section(run_dir, df, info))
    parts.append("<h2>Per family</h2>")
    fam_cols = [("revisit_psnr_gt", "revisit PSNR vs GT", +1), ("revisit_psnr_self", "revisit PSNR self", +1),
                ("rpe_trans", "RPE-trans", -1), ("rpe_rot_deg", "RPE-rot", -1)]
    for f in fams:
        parts.append(f"<h3>{html.escape(f)}</h3>" + _html_table(aggregate(df, family=f), fam_cols))
    fails = info.get("failures", [])
    if fails:
        parts.append("<h2>Not run / failed</h2><ul>")
        for f in fails:
            where = f" on {f['task']}" if f.get("task") else ""
            parts.append(f"<li><code>{html.escape(f['model'])}</code>{html.escape(where)} ({html.escape(f['stage'])}): "
                         f"{html.escape(f['error'])}</li>")
        parts.append("</ul>")
    parts.append("<p class='note'>Generated by relic-suite (<code>relic bench run</code>). Full tidy results: "
                 "results.csv / results.parquet next to this file.</p></body></html>")
    return "".join(parts)


def write_report(run_dir: Path, dest: Path | None = None) -> Path:
    """Write ``report.html`` into ``run_dir`` (or ``dest``) atomically; returns its path."""
    text = report_html(run_dir)
    dest = Path(dest) if dest else Path(run_dir) / "report.html"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, dest)
    return dest


__all__ = ["report_html", "write_report"]
