"""A small committed snapshot of an unfinished training stage, so a run survives a fresh work tree.

Training runs live under ``runs/`` (not committed). While a multi-session run is unfinished its
newest checkpoint (weights + optimizer + config + state.json) and its ``losses.csv`` are copied
into one folder under ``relic_model/checkpoints/`` that is *replaced* on every save (one
snapshot per run, never accumulated), and restored into the run folder before resuming::

    python -m relic_model.train.snapshot save    RUN STAGE SNAPSHOT_DIR
    python -m relic_model.train.snapshot restore SNAPSHOT_DIR RUN STAGE
    relic train STAGE --config CONFIG --corpus CORPUS --out RUN --resume

``restore`` never overwrites a newer checkpoint already in the run (it is a no-op then), and the
resumed run reproduces the uninterrupted one (every random draw is seeded from the step).
Files are copied to ``NAME.tmp`` and renamed, so a snapshot is either complete or absent.

A *finished* stage (``RUN/STAGE/final`` exists) is snapshotted as its final weights only (no
optimizer: nothing resumes it; ``snapshot.json`` says ``"final": true``), and restoring that puts
them back into ``RUN/STAGE/final``, which is all the later stages (and ``relic train all
--resume``, which skips a stage with final weights) read. So a multi-stage recipe keeps one folder
per stage, e.g. ``relic_model/checkpoints/next_state/{autoencoder,teacher}``.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from relic_model.train.checkpoint import CheckpointManager, checkpoint_step

FILES = ("model.safetensors", "optimizer.pt", "config.yaml", "state.json")
FINAL_FILES = ("model.safetensors", "config.yaml", "state.json")


def _final(stage_dir: Path) -> Path | None:
    p = stage_dir / "final"
    return p if (p / "model.safetensors").is_file() and (p / "state.json").is_file() else None


def save_snapshot(run: str | Path, stage: str, dest: str | Path) -> Path:
    """Copy the newest complete checkpoint of ``run/stage`` (and its losses.csv) into ``dest``,
    replacing what was there; for a finished stage, its final weights. Returns ``dest``."""
    stage_dir = Path(run) / stage
    final = _final(stage_dir)
    latest = final or CheckpointManager(stage_dir).latest()
    if latest is None:
        raise FileNotFoundError(f"{stage_dir}/checkpoints has no complete checkpoint to snapshot")
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for f in FINAL_FILES if final else FILES:
        if (latest / f).is_file():
            shutil.copy2(latest / f, tmp / f)
    if (stage_dir / "losses.csv").is_file():
        shutil.copy2(stage_dir / "losses.csv", tmp / "losses.csv")
    (tmp / "snapshot.json").write_text(json.dumps({"stage": stage, "step": checkpoint_step(latest), "source": str(latest),
                                                   "final": final is not None}, indent=2) + "\n")
    old = dest.with_name(dest.name + ".old")
    if dest.exists():
        if old.exists():
            shutil.rmtree(old)
        dest.replace(old)
    tmp.replace(dest)
    if old.exists():
        shutil.rmtree(old)
    return dest


def restore_snapshot(src: str | Path, run: str | Path, stage: str) -> Path | None:
    """Put the snapshot ``src`` into ``run/stage/checkpoints/step_XXXXXXXX`` (a finished stage's:
    into ``run/stage/final``; and its losses.csv into ``run/stage``) unless the run already holds
    a checkpoint at or after its step (or final weights). Returns the folder written, or None
    when nothing was done."""
    src = Path(src)
    meta = json.loads((src / "snapshot.json").read_text())
    if meta["stage"] != stage:
        raise ValueError(f"{src} is a snapshot of stage {meta['stage']!r}, not {stage!r}")
    step = int(meta["step"])
    stage_dir = Path(run) / stage
    if _final(stage_dir) is not None:
        return None
    latest = CheckpointManager(stage_dir).latest()
    if meta.get("final"):
        target = stage_dir / "final"
    elif latest is not None and checkpoint_step(latest) >= step:
        return None
    else:
        target = stage_dir / "checkpoints" / f"step_{step:08d}"
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for f in FINAL_FILES if meta.get("final") else FILES:
        if (src / f).is_file():
            shutil.copy2(src / f, tmp / f)
    tmp.replace(target)
    if (src / "losses.csv").is_file():
        shutil.copy2(src / "losses.csv", stage_dir / "losses.csv")
    return target


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save", help="snapshot RUN/STAGE's newest checkpoint into DEST (replaced)")
    s.add_argument("run")
    s.add_argument("stage")
    s.add_argument("dest")
    r = sub.add_parser("restore", help="put snapshot SRC into RUN/STAGE/checkpoints (unless the run is newer)")
    r.add_argument("src")
    r.add_argument("run")
    r.add_argument("stage")
    a = p.parse_args(argv)
    if a.cmd == "save":
        d = save_snapshot(a.run, a.stage, a.dest)
        print(f"snapshot {d} (step {json.loads((d / 'snapshot.json').read_text())['step']})")
    else:
        t = restore_snapshot(a.src, a.run, a.stage)
        print(f"restored into {t}" if t else "run already holds a checkpoint at or after the snapshot; nothing done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
