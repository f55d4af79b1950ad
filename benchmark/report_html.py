"""Self-contained HTML report of a benchmark run (``OUT/report.html``).

Everything is inline: CSS in a <style> block, every image a base64 PNG data URI (matplotlib figures
rendered with the Agg backend, revisit strips read from ``OUT/strips``); no scripts, no external URL.
A table of contents links the sections: leaderboard (our rows, with task coverage and INCOMPLETE
marks, then the paper's Table 2 rows marked "reported by the paper, different test set"), memory
(consistency gain beside fidelity, revisit pair counts per task), action following by segment
type, long-horizon tasks, metric validity (orderings between independent videos, PASS/FAIL),
metric-vs-time curves, estimated vs commanded trajectories (top-down), revisit strips (GT | first
visit | revisit, shown at least 3x their pixel size), per-family tables, and the models that were
n/a, incomplete or could not run. Table rules (like-with-like means, n/a, FPS only for models that
generate) are :mod:`benchmark.leaderboard`'s.

The report is rebuilt from the run directory alone: ``write_report(OUT)``.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.leaderboard import (ACTION_COLUMNS, FAMILY_COLUMNS, FIRST_VIEW_COLUMNS, FIRST_VIEW_NOTE, INTRO,
                                   LONG_COLUMNS, MAIN_COLUMNS, MEMORY_COLUMNS, MEMORY_NOTE, REVISIT_COUNT_COLUMNS,
                                   common_tasks, headers, load_results, load_run_info, lpips_note, model_status,
                                   revisit_counts, table_rows)
from benchmark.naming import NOISE_FLOOR_MODEL, is_reference, model_sort_key, slug
from benchmark.paper_results import PAPER_LABEL, PAPER_SOURCE, paper_table
from benchmark.report_validity import validity_checks
from datagen.atomic import atomic_write_text

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
tr.incomplete td{color:#b00020}nav.toc{background:#f7f7fa;border:1px solid #e0e0e6;padding:8px 16px;margin:12px 0}
nav.toc ol{margin:4px 0;padding-left:22px}nav.toc li{margin:2px 0}
.pass{color:#0a7d28;font-weight:600}.fail{color:#b00020;font-weight:600}
.note{color:#555;font-size:13px}.strip{margin:4px 0 12px 0}
img{max-width:100%;image-rendering:pixelated}.strips td{vertical-align:middle}
.panels{display:flex;gap:0;font-size:12px;color:#555}.panels span{flex:1;text-align:center}
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


def _html_table(rows, columns, with_tasks: bool = False) -> str:
    out = ["<table><thead><tr><th>model</th>"]
    out += [f"<th>{html.escape(h)}</th>" for h in headers(columns, with_tasks)]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append(f'<tr class="{r.kind}"><td>{html.escape(r.label)}</td>')
        out += [f"<td>{html.escape(c)}</td>" for c in r.cells]
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


STRIP_SCALE = 4          # revisit strips are shown at up to 4x their pixel size ...
STRIP_MAX_WIDTH = 1240   # ... as wide as the page's content allows


def strips_section(run_dir: Path, df: pd.DataFrame, info: dict, max_tasks: int = 8) -> str:
    sdirs = _model_dirs(run_dir, "strips")
    if not sdirs:
        return "<p class='note'>No revisit pairs in this run's tasks.</p>"
    names = _slug_to_model(df)
    models = sorted(sdirs, key=lambda s: model_sort_key(names.get(s, s)))
    tasks = [t for t in info.get("tasks", []) if any((sdirs[s] / f"{t['task_id']}.png").exists() for s in models)]
    tasks = sorted(tasks, key=lambda t: not t["family"].startswith("revisit"))[:max_tasks]
    parts = []
    for t in tasks:
        strip_w = 3 * t["width"] + 4
        width = min(STRIP_SCALE * strip_w, STRIP_MAX_WIDTH)
        parts.append(f"<h3>{html.escape(t['task_id'])} <span class='note'>({html.escape(t['family'])})</span></h3>"
                     f"<div class='panels' style='width:{width}px'><span>ground truth, revisit</span>"
                     "<span>model, first visit</span><span>model, revisit</span></div>")
        for s in models:
            f = sdirs[s] / f"{t['task_id']}.png"
            if f.exists():
                parts.append(f"<figure class='strip'>{_img(_b64_png(f.read_bytes()), 'strip ' + s, width=width)}"
                             f"<figcaption>{html.escape(_label(names.get(s, s)))}</figcaption></figure>")
    return "".join(parts)


def validity_section(df: pd.DataFrame) -> str:
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


SECTIONS = [("leaderboard", "Leaderboard"), ("memory", "Memory"), ("action", "Action following by segment type"),
            ("long", "Long-horizon tasks"), ("validity", "Metric validity"), ("curves", "Metrics over time"),
            ("trajectories", "Estimated vs commanded trajectories"), ("strips", "Revisit strips"),
            ("families", "Per family"), ("completeness", "Not applicable, incomplete, failed")]


def _counts_html(df: pd.DataFrame) -> str:
    counts = revisit_counts(df)
    if not len(counts):
        return ""
    cols = [(m, h) for m, h in REVISIT_COUNT_COLUMNS if m in counts.columns]
    out = ["<p class='note'>Revisit pairs per task (ground truth; the same for every model).</p><table><thead><tr>"
           "<th>task</th>" + "".join(f"<th>{html.escape(h)}</th>" for _, h in cols) + "</tr></thead><tbody>"]
    for task, r in counts.iterrows():
        out.append(f"<tr><td>{html.escape(task)}</td>" + "".join(
            f"<td>{int(r[m]) if np.isfinite(r[m]) else 'n/a'}</td>" for m, _ in cols) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def report_html(run_dir: Path) -> str:
    """The report's HTML text for a run directory."""
    run_dir = Path(run_dir)
    df = load_results(run_dir)
    info = load_run_info(run_dir)
    st = model_status(df, info)
    tasks = info.get("tasks", [])
    title = f"relic-suite benchmark report: suite {info.get('suite', '?')}"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    if tasks:
        fams = sorted({t["family"] for t in tasks})
        parts.append(f"<p>{len(tasks)} tasks on held-out (test-split) scenes; families: {html.escape(', '.join(fams))}; "
                     f"{sum(t['num_frames'] for t in tasks)} frames in all; scoring protocol "
                     f"{html.escape(str(info.get('protocol', 1)))}. Run finished "
                     f"{html.escape(str(info.get('finished_utc', '?')))} in {info.get('wall_s', float('nan')):.1f} s "
                     f"on {info.get('cpu_count', '?')} CPU(s); pose estimator <code>{html.escape(str(info.get('estimator', '?')))}</code>.</p>")
    metrics = set(df["metric"].unique())
    fams = sorted(df["family"].dropna().unique())
    long_f = [f for f in fams if f.startswith("long")]
    present = {"action": "rpe_trans_rel" in metrics, "long": bool(long_f)}
    parts.append("<nav class='toc'><b>Contents</b><ol>" + "".join(
        f"<li><a href='#{key}'>{html.escape(title)}</a></li>" for key, title in SECTIONS if present.get(key, True))
        + "</ol></nav>")
    parts.append(f"<p class='note'>{html.escape(INTRO)}</p>")
    note = lpips_note(df)
    if note:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    parts.append("<h2 id='leaderboard'>Leaderboard</h2>"
                 + _html_table(table_rows(df, info, MAIN_COLUMNS, st, main=True, with_tasks=True), MAIN_COLUMNS,
                               with_tasks=True))
    common = common_tasks(st)
    if common is not None:
        parts.append(f"<h3>On the {len(common)} tasks every complete model ran</h3><p class='note'>Some models "
                     "declared tasks outside their action space; this table compares every complete model on the "
                     "same tasks.</p>" + _html_table(table_rows(df, info, MAIN_COLUMNS, st, tasks=common, main=True),
                                                     MAIN_COLUMNS))
    parts.append(f"<h3>Reported by the paper, different test set</h3><p class='note'>{html.escape(PAPER_SOURCE)}. "
                 f"These rows are <b>{html.escape(PAPER_LABEL)}</b>: not comparable with ours; the paper reports no "
                 "memory metrics.</p>" + _paper_html())
    parts.append(f"<h2 id='memory'>Memory</h2><p class='note'>{html.escape(MEMORY_NOTE)}</p>"
                 + _html_table(table_rows(df, info, MEMORY_COLUMNS, st), MEMORY_COLUMNS) + _counts_html(df))
    if present["action"]:
        parts.append("<h2 id='action'>Action following by segment type</h2>"
                     + _html_table(table_rows(df, info, ACTION_COLUMNS, st), ACTION_COLUMNS))
    if long_f:
        parts.append("<h2 id='long'>Long-horizon tasks</h2>"
                     + _html_table(table_rows(df, info, LONG_COLUMNS, st, families=long_f), LONG_COLUMNS))
    if "rpe_trans@first_view" in metrics:
        parts.append(f"<h3>Action following in the first view</h3><p class='note'>{html.escape(FIRST_VIEW_NOTE)}</p>"
                     + _html_table(table_rows(df, info, FIRST_VIEW_COLUMNS, st), FIRST_VIEW_COLUMNS))
    parts.append("<h2 id='validity'>Metric validity</h2>" + validity_section(df))
    parts.append("<h2 id='curves'>Metrics over time</h2>" + curves_section(run_dir, df, info))
    parts.append("<h2 id='trajectories'>Estimated vs commanded trajectories</h2>"
                 + trajectories_section(run_dir, df, info))
    parts.append("<h2 id='strips'>Revisit strips</h2><p class='note'>Per task and model, the clearest revisit pair "
                 "(highest view overlap, then widest gap): ground truth at the revisit | the model's frame at the "
                 "first visit | the model's frame at the revisit. A model with spatial memory shows the same content "
                 "in the last two panels.</p>" + strips_section(run_dir, df, info))
    parts.append("<h2 id='families'>Per family</h2>")
    for f in fams:
        parts.append(f"<h3>{html.escape(f)}</h3>" + _html_table(table_rows(df, info, FAMILY_COLUMNS, st, family=f),
                                                                 FAMILY_COLUMNS))
    parts.append("<h2 id='completeness'>Not applicable, incomplete, failed</h2>" + _completeness_html(st, info))
    parts.append("<p class='note'>Generated by relic-suite (<code>relic bench run</code>). Full tidy results: "
                 "results.csv / results.parquet next to this file.</p></body></html>")
    return "".join(parts)


def _completeness_html(st, info: dict) -> str:
    out = []
    na = [(m, t, r) for m, s in st.items() for t, r in sorted(s.na.items())]
    if na:
        out.append("<h3>Not applicable (declared outside the model's action space)</h3><ul>")
        out += [f"<li><code>{html.escape(m)}</code> on {html.escape(t)}: {html.escape(r)}</li>" for m, t, r in na]
        out.append("</ul>")
    bad = [s for s in st.values() if not s.complete]
    if bad:
        out.append("<h3>Incomplete models</h3><p class='note'>" + html.escape(
            "Run with --allow-missing: their rows average only the tasks they have." if info.get("allow_missing")
            else "Their rows show no means (they would cover other tasks than the rows beside them); the run exited "
                 "non-zero.") + "</p><ul>")
        for s in sorted(bad, key=lambda s: model_sort_key(s.model)):
            out += [f"<li>{html.escape(line)}</li>" for line in s.problems()]
        out.append("</ul>")
    fails = [f for f in info.get("failures", []) if f.get("task") is None]
    if fails:
        out.append("<h3>Models that could not be built</h3><ul>")
        for f in fails:
            out.append(f"<li><code>{html.escape(str(f['model']))}</code> ({html.escape(str(f.get('stage', '?')))}): "
                       f"{html.escape(str(f.get('error', '?')))}</li>")
        out.append("</ul>")
    return "".join(out) or "<p class='note'>Every model ran every task of the suite.</p>"


def write_report(run_dir: Path, dest: Path | None = None) -> Path:
    """Write ``report.html`` into ``run_dir`` (or ``dest``) atomically; returns its path."""
    text = report_html(run_dir)
    dest = Path(dest) if dest else Path(run_dir) / "report.html"
    return atomic_write_text(dest, text)


__all__ = ["report_html", "write_report"]
