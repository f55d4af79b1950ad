"""Does the bundled model beat doing nothing? The bundled model's bars, checked from measured outputs.

Reads what the measuring commands wrote and writes one table, each bar with its measured value, its
reference, the margin and met / missed (nothing is measured here, so the table can be re-made from
committed reports on any machine):

- a benchmark run's ``results.csv`` (``relic bench run --models relic,relic-nomem,baselines``):
  revisit PSNR vs GT (relic > static and > relic-nomem), revisit consistency gain (relic >
  relic-nomem), ``rpe_rot_deg`` (relic <= 0.7 x static's), ``rpe_trans_rel`` (relic <= 0.8);
  task means as in the leaderboard (``benchmark.aggregate.aggregate``);
- the still-shot probe's JSON (``python -m benchmark.probes.still_shot --out X.md`` writes ``X.json``):
  on every first frame, every generated frame of the ``mem`` variant (the benchmark's ``relic``)
  within 3 dB of the autoencoder's own reconstruction PSNR of frame 0 (``gap_min`` <= 3, worst image);
- ``perf/perf_streaming.py``'s JSON: frames/s with 20 s of memory >= 16, with trained weights
  (random weights are reported as "not the bundled weights": the bar is not met by them).

Command::

    python -m benchmark.probes.model_bars --results RUN/results.csv \
        --still reports/diagnosis_still_shot.json --perf reports/perf_streaming.json \
        --out reports/model_bars.md
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.aggregate import aggregate
from datagen.atomic import atomic_write_text

MODEL, NOMEM, STATIC = "relic", "relic-nomem", "static"
STILL_GAP_DB = 3.0
ROT_RATIO = 0.7
TRANS_REL = 0.8
STREAM_FPS = 16.0


@dataclass
class Bar:
    name: str
    measured: float
    reference: str
    margin: float          # > 0: met by this much; < 0: missed by this much (units of the bar)
    strict: bool = False   # a "> reference" bar (a tie misses it); else "<=" / ">=" (a tie meets it)
    note: str = ""

    @property
    def met(self) -> bool | None:
        if not math.isfinite(self.margin):
            return None
        return self.margin > 0 if self.strict else self.margin >= 0


def _cell(agg: pd.DataFrame, model: str, metric: str) -> float:
    if model in agg.index and metric in agg.columns:
        return float(agg.loc[model, metric])
    return float("nan")


def benchmark_bars(results: pd.DataFrame) -> list[Bar]:
    """The four bars read from a benchmark run's tidy results (relic, relic-nomem and static rows)."""
    missing = [m for m in (MODEL, NOMEM, STATIC) if m not in set(results["model"])]
    if missing:
        raise ValueError(f"results have no rows for {', '.join(missing)}: run `relic bench run --models "
                         f"relic,relic-nomem,baselines`")
    agg = aggregate(results)
    v = {m: {k: _cell(agg, m, k) for k in ("revisit_psnr_gt", "revisit_consistency_gain", "rpe_rot_deg",
                                              "rpe_trans_rel")} for m in (MODEL, NOMEM, STATIC)}
    r, n, s = v[MODEL], v[NOMEM], v[STATIC]
    return [
        Bar("revisit PSNR vs GT > static (dB)", r["revisit_psnr_gt"], f"static {s['revisit_psnr_gt']:.2f}",
            r["revisit_psnr_gt"] - s["revisit_psnr_gt"], strict=True),
        Bar("revisit PSNR vs GT > relic-nomem (dB)", r["revisit_psnr_gt"], f"relic-nomem {n['revisit_psnr_gt']:.2f}",
            r["revisit_psnr_gt"] - n["revisit_psnr_gt"], strict=True),
        Bar("revisit consistency gain > relic-nomem (dB)", r["revisit_consistency_gain"],
            f"relic-nomem {n['revisit_consistency_gain']:.2f}",
            r["revisit_consistency_gain"] - n["revisit_consistency_gain"], strict=True),
        Bar(f"rpe_rot_deg <= {ROT_RATIO} x static's", r["rpe_rot_deg"],
            f"static {s['rpe_rot_deg']:.2f} (bar {ROT_RATIO * s['rpe_rot_deg']:.2f}; "
            f"ratio {r['rpe_rot_deg'] / s['rpe_rot_deg']:.2f}x)", ROT_RATIO * s["rpe_rot_deg"] - r["rpe_rot_deg"]),
        Bar(f"rpe_trans_rel <= {TRANS_REL}", r["rpe_trans_rel"], f"static {s['rpe_trans_rel']:.2f}",
            TRANS_REL - r["rpe_trans_rel"]),
    ]


def still_bar(rows: list[dict], variant: str = "mem") -> Bar:
    """Worst image's ``ae_rec - min generated PSNR vs frame 0`` of one still-shot variant."""
    mine = [r for r in rows if r.get("variant") == variant]
    if not mine:
        raise ValueError(f"the still-shot rows have no '{variant}' variant")
    worst = max(mine, key=lambda r: r["gap_min"])
    return Bar(f"still shot: every frame within {STILL_GAP_DB:g} dB of AE rec., worst of {len(mine)} images (dB)",
               worst["gap_min"], f"worst {worst['image']}: AE rec. {worst['ae_rec']:.2f}, min frame "
               f"{worst['min_f0']:.2f}; mean gap {sum(r['gap_min'] for r in mine) / len(mine):.2f}",
               STILL_GAP_DB - worst["gap_min"])


def streaming_bar(perf: dict) -> Bar:
    rt = perf.get("realtime", {})
    fps = float(rt.get("frames_per_s", float("nan")))
    weights = str(perf.get("weights", "unknown"))
    trained = not weights.startswith("random")
    load = rt.get("loadavg_1min", perf.get("loadavg_before"))
    ref = f"weights: {weights}; {rt.get('history_s_at_start', '?')} s of memory; load average {load if load is None else round(float(load), 2)}"
    margin = fps - STREAM_FPS if trained else float("nan")
    return Bar(f"streams >= {STREAM_FPS:g} frames/s with 20 s of memory (bundled weights)", fps, ref, margin,
               note="" if trained else "not the bundled weights: the bar is not measured by this run")


def bars_markdown(bars: list[Bar], sources: list[str]) -> str:
    lines = ["# Bundled model bars (issue 20)", "",
             "Sources: " + "; ".join(sources) + ".", "",
             "| bar | measured | reference | margin | met |", "|---|---:|---|---:|---|"]
    for b in bars:
        met = {True: "met", False: "**missed**", None: "not measured"}[b.met]
        extra = f" ({b.note})" if b.note else ""
        lines.append(f"| {b.name} | {b.measured:.2f} | {b.reference}{extra} | {b.margin:+.2f} | {met} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", help="a benchmark run's results.csv (relic, relic-nomem, static rows)")
    p.add_argument("--still", help="the still-shot probe's JSON rows")
    p.add_argument("--perf", help="perf/perf_streaming.py's JSON")
    p.add_argument("--out", default=None, help="Markdown table (printed either way)")
    a = p.parse_args(argv)
    if not (a.results or a.still or a.perf):
        p.error("give at least one of --results, --still, --perf")
    bars, sources = [], []
    if a.still:
        bars.append(still_bar(json.loads(Path(a.still).read_text())))
        sources.append(f"still shot `{a.still}`")
    if a.results:
        df = pd.read_csv(a.results)
        bars += benchmark_bars(df)
        protos = sorted(set(df["protocol"])) if "protocol" in df.columns else []
        sources.append(f"benchmark `{a.results}` (protocol {', '.join(map(str, protos)) or '?'})")
    if a.perf:
        bars.append(streaming_bar(json.loads(Path(a.perf).read_text())))
        sources.append(f"streaming `{a.perf}`")
    md = bars_markdown(bars, sources)
    print(md, end="")
    if a.out:
        atomic_write_text(Path(a.out), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
