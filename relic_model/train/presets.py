"""The smallest configuration that runs every training code path in seconds ("micro"): used by
the tests and for smoke runs (``relic train all --config micro.yaml`` after ``write_micro_config``).
32x48 video, 4x6 latents, a 2-block DiT of width 24, a few steps per stage."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from relic_model.config import config_from_dict

MICRO = {
    "name": "relic-micro",
    "data": {"height": 32, "width": 48, "fps": 16.0},
    "autoencoder": {"latent_channels": 4, "spatial_factor": 8, "channels": [8, 8, 8], "fast_channels": [4, 4, 4]},
    "dit": {"dim": 24, "depth": 2, "heads": 2, "frames_per_block": 1, "text_dim": 16},
    "memory": {"window": 2, "schedule": [1, 2, 4]},
    "text": {"dim": 16, "max_tokens": 6, "buckets": 64, "layers": 1, "heads": 2},
    "train": {
        "autoencoder": {"steps": 3, "batch": 2, "clip_latents": 2, "stats_clips": 4, "log_every": 1, "ckpt_every": 2,
                        "sample_every": 3},
        "teacher": {"curriculum": [{"latent_frames": 3, "steps": 2}, {"latent_frames": 4, "steps": 2}], "batch": 2,
                    "pool_clips": 6, "log_every": 1, "ckpt_every": 2, "sample_every": 4},
        "student_init": {"steps": 3, "batch": 2, "num_blocks": 3, "num_noisy_blocks": 1, "trajectories": 4,
                         "ode_steps": 4, "log_every": 1, "ckpt_every": 2, "sample_every": 3},
        "distill": {"curriculum": [{"num_blocks": 2, "steps": 2}, {"num_blocks": 3, "steps": 2}], "batch": 2,
                    "gen_update_every": 2, "log_every": 1, "ckpt_every": 2, "sample_every": 4},
    },
}


def micro_dict(**train_overrides) -> dict:
    d = copy.deepcopy(MICRO)
    for stage, vals in train_overrides.items():
        d["train"].setdefault(stage, {}).update(vals)
    return d


def micro_config(**train_overrides):
    return config_from_dict(micro_dict(**train_overrides))


def write_micro_config(path: str | Path, **train_overrides) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(micro_dict(**train_overrides), sort_keys=False))
    return path
