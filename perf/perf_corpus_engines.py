"""Corpus build throughput, local engine vs Ray engine, back to back (issue 23).

    python perf/perf_corpus_engines.py [--config datagen/configs/default_corpus.yaml]
        [--workers 2] [--limit N] [--rounds 1] [--out reports/perf_corpus_build.md]

Builds the same corpus (default: the default corpus, 140 episodes at 112x64) into fresh folders
with ``build_corpus`` (local worker processes) and ``build_corpus_ray`` (Ray actors), alternating
local, Ray per round. frames/s = frames written / wall seconds of the build call. Ray's start-up
(``ray.init`` of a local Ray with this machine's cores) is timed separately and NOT counted; the
Ray build's time does include starting its actors (worker processes importing the capture stack).
The two corpora are compared (sha256 of every file under episodes/, manifest), so the numbers
are for identical output. The machine is shared: ``uptime``'s load averages are recorded before
and after each build. Writes/replaces its section (one per order: local first, or Ray first with
``--ray-first``) between ``ray-engine`` markers of ``--out``; the rest of the file is kept.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datagen import ray_session  # noqa: E402
from datagen.capture.config import load_config  # noqa: E402
from datagen.capture.pipeline import build_corpus  # noqa: E402
from datagen.capture.ray_engine import build_corpus_ray  # noqa: E402

BAR = 0.8  # Ray >= 0.8 x local
MARK = "<!-- ray-engine {order}:{edge} -->"  # one block per order (local first / Ray first)


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _sums(out: Path) -> dict:
    root = out / "episodes"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def build(engine: str, cfg, out: Path, workers: int, limit) -> dict:
    up0 = _uptime()
    t0 = time.perf_counter()
    if engine == "local":
        res = build_corpus(cfg, out, workers=workers, progress=False, limit=limit)
    else:
        res = build_corpus_ray(cfg, out, workers=workers, progress=False, limit=limit)
    wall = time.perf_counter() - t0
    if res.failed:
        raise RuntimeError(f"{engine} build failed: {res.failed}")
    return {"engine": engine, "episodes": res.built, "frames": res.frames, "wall_s": round(wall, 2),
            "frames_per_s": round(res.frames / wall, 1), "uptime_before": up0, "uptime_after": _uptime()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "datagen" / "configs" / "default_corpus.yaml"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="only the first N episodes (default: all)")
    ap.add_argument("--rounds", type=int, default=1, help="local, Ray pairs (back to back)")
    ap.add_argument("--ray-first", action="store_true", help="each round builds with Ray first, then locally")
    ap.add_argument("--out", default=str(ROOT / "reports" / "perf_corpus_build.md"))
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    work = Path(tempfile.mkdtemp(prefix="perf_engines_"))
    rows, identical = [], []
    session = None
    try:
        for rnd in range(args.rounds):
            for engine in (("ray", "local") if args.ray_first else ("local", "ray")):
                if engine == "ray" and session is None:
                    session = ray_session.start(None)  # this machine's cores; timed, not counted
                    print(f"ray start-up {session.startup_s:.2f} s", flush=True)
                r = build(engine, cfg, work / f"{engine}{rnd}", args.workers, args.limit)
                rows.append({**r, "round": rnd})
                print(r, flush=True)
            a, b = work / f"local{rnd}", work / f"ray{rnd}"
            identical.append(_sums(a) == _sums(b) and (a / "manifest.csv").read_bytes() == (b / "manifest.csv").read_bytes())
            shutil.rmtree(a, ignore_errors=True)
            shutil.rmtree(b, ignore_errors=True)
    finally:
        startup = session.startup_s if session is not None else float("nan")
        if session is not None:
            ray_session.stop(session)
        shutil.rmtree(work, ignore_errors=True)

    import ray

    loc = [r["frames_per_s"] for r in rows if r["engine"] == "local"]
    ray_fps = [r["frames_per_s"] for r in rows if r["engine"] == "ray"]
    ratio = [b / a for a, b in zip(loc, ray_fps)]
    subset = f"the first {args.limit} episodes of" if args.limit else "all episodes of"
    cmd = "python perf/perf_corpus_engines.py" + (" --ray-first" if args.ray_first else "") + "".join(
        f" {k} {v}" for k, v in (("--limit", args.limit), ("--rounds", args.rounds if args.rounds != 1 else None),
                                 ("--workers", args.workers if args.workers != 2 else None)) if v)
    order = "ray-first" if args.ray_first else "local-first"
    start, end = MARK.format(order=order, edge="start"), MARK.format(order=order, edge="end")
    md = [start, f"## Local engine vs Ray engine (issue 23), {'Ray' if args.ray_first else 'local engine'} first", "",
          f"Command: `{cmd}` ({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"shared machine, Ray {ray.__version__}, Python {platform.python_version()}). Corpus: {subset} "
          f"`{Path(args.config).name}` ({cfg.width}x{cfg.height}), {args.workers} workers (local: processes; "
          f"Ray: {args.workers} capture actors of 1 CPU on a local Ray with {os.cpu_count()} CPUs). "
          f"Each round builds with {'Ray, then the local engine' if args.ray_first else 'the local engine, then Ray'}, "
          "back to back into fresh folders. "
          "Ray's start-up (`ray.init`) is timed separately and not counted; the Ray time includes starting "
          "its actors.", "",
          "| round | engine | episodes | frames | wall s | frames/s | `uptime` before | after |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ld = lambda u: u.split("load average:")[-1].strip()  # noqa: E731
        md.append(f"| {r['round']} | {r['engine']} | {r['episodes']} | {r['frames']} | {r['wall_s']} | "
                  f"**{r['frames_per_s']}** | {ld(r['uptime_before'])} | {ld(r['uptime_after'])} |")
    met = all(x >= BAR for x in ratio)
    md += ["", f"Ray start-up (not counted): {startup:.2f} s.",
           f"Ray / local frames/s per round: {', '.join(f'{x:.2f}' for x in ratio)} (bar: >= {BAR}) -> "
           f"**{'MET' if met else 'NOT MET'}**.",
           f"Corpora identical (sha256 of every file under episodes/, manifest.csv): "
           f"{', '.join('yes' if x else 'NO' for x in identical)}.",
           "Load averages are `uptime`'s 1, 5 and 15 minute values; other agents' jobs share the 2 cores, so "
           "both engines ran under the same (changing) load, one after the other.", end, ""]
    out = Path(args.out)
    text = out.read_text() if out.exists() else "# Corpus build throughput\n\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + "\n".join(md) + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(md)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0 if met and all(identical) else 1


if __name__ == "__main__":
    sys.exit(main())
