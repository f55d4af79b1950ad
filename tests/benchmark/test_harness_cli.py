"""`relic bench tasks` / `relic bench score` end to end through the real CLI."""
import cv2
import numpy as np
import pandas as pd
import pytest

import relic_cli
from benchmark.tasks.io import load_suite


def test_tasks_then_score_a_video_folder(tmp_path, capsys):
    suite_dir = tmp_path / "suite"
    assert relic_cli.main(["bench", "tasks", "--out", str(suite_dir), "--suite", "mini", "--quiet"]) == 0
    suite = load_suite(suite_dir)
    # an "external model" that submits the ground truth as PNG folders (N frames incl. frame 0)
    vids = tmp_path / "videos"
    for t in suite.tasks:
        (vids / t.task_id).mkdir(parents=True)
        for i, f in enumerate(t.gt_frames()):
            cv2.imwrite(str(vids / t.task_id / f"{i:04d}.png"), f[..., ::-1])
    out = tmp_path / "scored"
    rc = relic_cli.main(["bench", "score", "--videos", str(vids), "--suite", str(suite_dir), "--out", str(out),
                         "--name", "gt-as-video", "--baselines", "oracle", "--no-lpips", "--quiet"])
    assert rc == 0
    df = pd.read_csv(out / "results.csv")
    t = df.pivot_table(index="model", columns="metric", values="value", aggfunc="mean")
    assert {"gt-as-video", "oracle"} <= set(t.index)
    # identical frames score identically to the oracle, and no speed is invented for a folder
    for m in ("rpe_trans", "rpe_rot_deg", "revisit_psnr_gt", "revisit_psnr_self", "drift_psnr_slope"):
        assert t.loc["gt-as-video", m] == pytest.approx(t.loc["oracle", m], nan_ok=True)
    assert "fps" not in set(df[df.model == "gt-as-video"]["metric"])
    assert "gt-as-video" in (out / "leaderboard.md").read_text()
    assert "report.html" in capsys.readouterr().out


def test_score_refuses_missing_videos(tmp_path):
    suite_dir = tmp_path / "suite"
    assert relic_cli.main(["bench", "tasks", "--out", str(suite_dir), "--suite", "mini", "--quiet"]) == 0
    (tmp_path / "empty").mkdir()
    rc = relic_cli.main(["bench", "score", "--videos", str(tmp_path / "empty"), "--suite", str(suite_dir),
                         "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 1  # clear error, nothing scored
    assert not (tmp_path / "o" / "results.csv").exists()
