"""Task means of a tidy results table: the numbers the leaderboard, the HTML report and the metric
validity checks compare.

:func:`aggregate` pivots a results table (``benchmark.naming.RESULT_COLUMNS``) to a model x metric
table whose cells are the mean over tasks of the per-task values, NaN values ignored (a metric
undefined on a task does not count for that task); a cell with no finite value is NaN. Rows are in
leaderboard order (``benchmark.naming.model_sort_key``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.naming import model_sort_key


def finite_mean(values) -> float:
    """Mean of the finite values (NaN and inf ignored); NaN when there is none."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def aggregate(df: pd.DataFrame, family: str | None = None, families: list[str] | None = None,
              tasks: list[str] | None = None) -> pd.DataFrame:
    """model x metric table of task means (NaN ignored), models in leaderboard order; optionally on one
    family, a list of families or a task list only."""
    d = df
    if family is not None:
        d = d[d["family"] == family]
    if families is not None:
        d = d[d["family"].isin(families)]
    if tasks is not None:
        d = d[d["task"].isin(tasks)]
    if d.empty:
        return pd.DataFrame()
    t = d.pivot_table(index="model", columns="metric", values="value", aggfunc=finite_mean, dropna=False)
    return t.loc[sorted(t.index, key=model_sort_key)]
