"""Names shared by every part of a benchmark run: the results table's columns, the noise-floor
pseudo-model, file-system slugs of model names, and the order models are listed in.

The harness writes these names, the gate, leaderboard, validity checks, HTML report and run merger
read them; they live here, below all of those, so none of them imports another for a name.

``RESULT_COLUMNS``           the tidy results table as written (results.csv / .parquet, gate baselines):
                             model, task, family, metric, value, protocol
``REQUIRED_RESULT_COLUMNS``  the columns a results table must have to be read (model, task, metric,
                             value); ``family`` is derived from the task id and ``protocol`` from
                             run.json when absent
``NOISE_FLOOR_MODEL``        the pseudo-model whose rows are the pose estimator's scores on the
                             ground-truth frames (benchmark.scoring.estimate_noise_floor)
``slug(name)``               file-system-safe model name, the folder of its curves, trajectories,
                             strips and scratch frames
``model_sort_key(name)``     leaderboard order: RELIC models (``MODEL_ORDER``), other world models,
                             reference baselines (``REFERENCE_PREFIXES``, in that order), the noise floor
"""
from __future__ import annotations

import re

RESULT_COLUMNS = ["model", "task", "family", "metric", "value", "protocol"]
REQUIRED_RESULT_COLUMNS = ["model", "task", "metric", "value"]
NOISE_FLOOR_MODEL = "estimator-noise-floor"
REFERENCE_PREFIXES = ("oracle", "static", "reproject", "noisy-oracle", "blank")
MODEL_ORDER = ("relic", "relic-nomem")


def slug(name: str) -> str:
    """File-system-safe version of a model name ("noisy-oracle:blur=2" -> "noisy-oracle_blur-2")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("=", "-")).strip("_") or "model"


def is_reference(model: str) -> bool:
    """True for the reference baselines (oracle, static, reproject, noisy-oracle:*, blank)."""
    return model.split(":")[0] in REFERENCE_PREFIXES


def model_sort_key(model: str) -> tuple:
    """Sort key of a model name in leaderboard order (see module doc)."""
    if model == NOISE_FLOOR_MODEL:
        return (3, 0, model)
    if model in MODEL_ORDER:
        return (0, MODEL_ORDER.index(model), model)
    if not is_reference(model):
        return (1, 0, model)
    base = model.split(":")[0]
    return (2, REFERENCE_PREFIXES.index(base), model)
