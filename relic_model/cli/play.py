"""``relic play``: turn an action script into a video with a RELIC checkpoint.

Action script grammar (``--actions`` or a text ``--actions-file``): comma-separated items
``KEYS[*N]``; KEYS are channel names or keyboard aliases of :mod:`datagen.actions` joined by
``+`` (``W``, ``S``, ``A``, ``D``, ``LiftUp``, ``LiftDown``, ``LookUp``, ``LookDown``,
``LookLeft``, ``LookRight``, ``RollCW``, ``RollCCW``, or ``static``/``none`` for no motion);
``N`` repeats the row N frames (default 1). Example: ``"W*16,A+LookLeft*8,static*4"``.
``--actions-file`` may also be a ``.npy`` (k, 13) array or a ``.csv`` with 13 columns (header
optional). The output video starts with the given first frame, then one frame per action.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from datagen.actions import DEFAULT_ROT_SPEED_DEG, multi_hot
from datagen.atomic import atomic_write
from datagen.cli_common import positive_float, positive_int
from relic_model.config import load_config

# On a shared CPU, spinning OpenMP workers slow 2-thread inference by 10-100x; sleeping waiters do
# not. Only effective when torch is not imported yet (it is imported lazily in run()).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def parse_action_script(script: str, speed: float = 1.0, rot_speed_deg: float | None = None) -> np.ndarray:
    """Parse the action grammar above into (k, 13) float32 rows."""
    rot = DEFAULT_ROT_SPEED_DEG if rot_speed_deg is None else rot_speed_deg
    rows = []
    for item in [s.strip() for s in script.replace("\n", ",").split(",")]:
        if not item:
            continue
        keys, _, count = item.partition("*")
        try:
            n = int(count) if count.strip() else 1
        except ValueError:
            raise ValueError(f"bad repeat count in action item {item!r} (expected KEYS*N)") from None
        if n < 0:
            raise ValueError(f"negative repeat count in action item {item!r}")
        names = [k.strip() for k in keys.split("+") if k.strip()]
        names = [k for k in names if k.lower() not in ("none", "static", "idle")]
        try:
            row = multi_hot(names, speed=speed, rot_speed_deg=rot)
        except (KeyError, ValueError) as e:
            raise ValueError(f"unknown key in action item {item!r}: {e}") from None
        rows += [row] * n
    if not rows:
        raise ValueError(f"action script {script!r} has no actions")
    return np.stack(rows).astype(np.float32)


def load_actions(args) -> np.ndarray:
    if bool(args.actions) == bool(args.actions_file):
        raise ValueError("give exactly one of --actions SCRIPT or --actions-file FILE")
    if args.actions:
        return parse_action_script(args.actions, args.speed)
    p = Path(args.actions_file)
    if not p.exists():
        raise FileNotFoundError(f"actions file not found: {p}")
    if p.suffix == ".npy":
        a = np.load(p).astype(np.float32)
    elif p.suffix == ".csv":
        import pandas as pd
        df = pd.read_csv(p, header=None)
        if not np.issubdtype(df.dtypes.iloc[0], np.number):
            df = pd.read_csv(p)
        a = df.to_numpy(np.float32)
    else:
        return parse_action_script(p.read_text(), args.speed)
    if a.ndim != 2 or a.shape[1] != 13:
        raise ValueError(f"{p}: expected (k, 13) actions, got {a.shape}")
    return a


def write_video(frames: np.ndarray, out: Path, fps: float) -> Path:
    """uint8 (T, H, W, 3) RGB -> ``out``: an .mp4/.avi (cv2 mp4v, atomic) or, for any other path, a
    folder of PNG frames ``000000.png ...``."""
    import cv2
    out = Path(out)
    if out.suffix.lower() in (".mp4", ".avi", ".mov"):
        def write(tmp: Path) -> None:
            H, W = frames.shape[1:3]
            vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (W, H))
            if not vw.isOpened():
                raise RuntimeError(f"OpenCV cannot write {out.suffix} here; use a folder path to write PNG frames")
            for f in frames:
                vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
            vw.release()

        return atomic_write(out, write, suffix=out.suffix)
    out.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(out / f"{i:06d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="checkpoint directory (config.yaml + model.safetensors); "
                   "default: the bundled relic_model/checkpoints/relic_tiny")
    p.add_argument("--random-init", metavar="CONFIG", default=None,
                   help="use UNTRAINED weights built from CONFIG (name or YAML) instead of a checkpoint (smoke tests)")
    p.add_argument("--image", required=True, help="first frame (PNG/JPG)")
    p.add_argument("--prompt", default="", help="static scene description")
    p.add_argument("--actions", default=None, help='action script, e.g. "W*16,A+LookLeft*8"')
    p.add_argument("--actions-file", default=None, help="action script text file, .npy (k,13) or .csv")
    p.add_argument("--out", required=True, help="output .mp4 (mp4v) or a folder for PNG frames")
    p.add_argument("--speed", type=positive_float, default=1.0, help="translation label per pressed key (ratio to gamma)")
    p.add_argument("--gamma", type=positive_float, default=0.05, help="metres per frame for a unit translation label")
    p.add_argument("--no-memory", action="store_true", help="rolling-window cache only (no-memory ablation)")
    p.add_argument("--seed", type=int, default=None, help="noise seed (default: config sampling.seed)")
    p.add_argument("--fps", type=positive_float, default=None, help="output video fps (default: config data.fps)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", help="torch device to run the model on (cpu, cuda)")


def run(args) -> int:
    import cv2
    import torch
    from tqdm import tqdm

    from relic_model.inference.streaming import StreamingGenerator
    if args.threads:
        torch.set_num_threads(args.threads)
    actions = load_actions(args)
    img = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {args.image}")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if args.random_init:
        from relic_model.inference.checkpoint import build_models
        cfg = load_config(args.random_init)
        torch.manual_seed(0 if args.seed is None else args.seed)
        dit, ae, text = (m.to(args.device).eval() for m in build_models(cfg))
    else:
        from relic_model.inference.checkpoint import load_checkpoint
        cfg, dit, ae, text = load_checkpoint(args.checkpoint, args.device)
    gen = StreamingGenerator(dit, ae, text, cfg, memory=not args.no_memory, device=args.device)
    gen.reset(img, args.prompt, None, seed=args.seed)
    frames = [img]
    with tqdm(total=len(actions), unit="frame", desc="relic play") as bar:
        for block in gen.step_iter(actions, args.gamma):
            frames.extend(block)
            bar.update(len(block))
    out = write_video(np.stack(frames), Path(args.out), args.fps or cfg.data.fps)
    tc = gen.cache.token_counts()
    print(f"wrote {len(frames)} frames to {out} (KV tokens held {tc['held']} vs uncompressed {tc['uncompressed']})")
    return 0
