"""The RELIC paper's Table 2 (Hong, Mei, Ge et al., arXiv 2512.04040), as reported.

These numbers were measured BY THE PAPER on ITS test set (220 stock images, 11 groups, one
predefined action script per group, 20-s clips, trajectories recovered with ViPE), not on our
suites: they are shown below our rows for orientation only and are never compared directly.
VBench columns are the paper's averages; RPE-trans / RPE-rot are lower-is-better (the paper does
not state RPE-rot's unit; we list it as printed).
"""
from __future__ import annotations

import pandas as pd

PAPER_LABEL = "reported by the paper, different test set"
PAPER_SOURCE = "RELIC (arXiv 2512.04040) Table 2: 220 images, 20 s clips, ViPE trajectories"

TABLE2 = [
    # model, VBench avg, imaging quality, aesthetic quality, RPE-trans, RPE-rot
    ("Matrix-Game-2.0", 0.7447, 0.6551, 0.4931, 0.1122, 1.48),
    ("Hunyuan-GameCraft", 0.7885, 0.6737, 0.5874, 0.1149, 1.23),
    ("RELIC", 0.8015, 0.6665, 0.5967, 0.0906, 1.00),
]


def paper_table() -> pd.DataFrame:
    """Table 2 as a DataFrame with columns model, vbench_avg, imaging_quality, aesthetic_quality,
    rpe_trans, rpe_rot, source (= PAPER_LABEL)."""
    df = pd.DataFrame(TABLE2, columns=["model", "vbench_avg", "imaging_quality", "aesthetic_quality",
                                       "rpe_trans", "rpe_rot"])
    df["source"] = PAPER_LABEL
    return df
