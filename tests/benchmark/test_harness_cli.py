"""`relic bench tasks` / `run` / `score` end to end through the real CLI: bad input exits non-zero
with one line per problem, incomplete models are marked, --allow-missing has one meaning."""
import cv2
import numpy as np
import pandas as pd
import pytest

import relic_cli
from benchmark.tasks.io import load_suite


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "suite"
    assert relic_cli.main(["bench", "tasks", "--out", str(d), "--suite", "mini", "--quiet"]) == 0
    return d


def _write_pngs(folder, frames):
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), f[..., ::-1])


def test_tasks_then_score_a_video_folder(suite_dir, tmp_path, capsys):
    suite = load_suite(suite_dir)
    # an "external model" that submits the ground truth as PNG folders (N frames incl. frame 0)
    vids = tmp_path / "videos"
    for t in suite.tasks:
        _write_pngs(vids / t.task_id, t.gt_frames())
    out = tmp_path / "scored"
    rc = relic_cli.main(["bench", "score", "--videos", str(vids), "--suite", str(suite_dir), "--out", str(out),
                         "--name", "gt-as-video", "--baselines", "oracle", "--no-lpips", "--quiet"])
    assert rc == 0
    df = pd.read_csv(out / "results.csv")
    t = df.pivot_table(index="model", columns="metric", values="value", aggfunc="mean")
    assert {"gt-as-video", "oracle"} <= set(t.index)
    # identical frames score identically to the oracle, and no speed is invented for a folder
    for m in ("rpe_rot_deg", "revisit_psnr_gt", "revisit_consistency_gain", "drift_psnr_slope"):
        assert t.loc["gt-as-video", m] == pytest.approx(t.loc["oracle", m], nan_ok=True)
    assert "fps" not in set(df[df.model == "gt-as-video"]["metric"])
    assert "gt-as-video" in (out / "leaderboard.md").read_text()
    assert "report.html" in capsys.readouterr().out


def test_score_refuses_missing_videos(suite_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = relic_cli.main(["bench", "score", "--videos", str(tmp_path / "empty"), "--suite", str(suite_dir),
                         "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 1  # clear error, nothing scored
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "have no video" in err
    assert not (tmp_path / "o" / "results.csv").exists()


def test_broken_videos_exit_nonzero_and_the_model_is_marked_incomplete(suite_dir, tmp_path, capsys):
    """A wrong frame count and a corrupt PNG: one line each, non-zero exit, no mean over fewer tasks;
    --allow-missing accepts it, labelled; not_applicable.json tasks are n/a, not missing."""
    suite = load_suite(suite_dir)
    t0, t1, t2 = suite.tasks
    vids = tmp_path / "videos"
    _write_pngs(vids / t0.task_id, t0.gt_frames())
    _write_pngs(vids / t1.task_id, t1.gt_frames()[:-3])          # wrong frame count
    _write_pngs(vids / t2.task_id, t2.gt_frames())
    (vids / t2.task_id / "0005.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png")  # corrupt
    args = ["bench", "score", "--videos", str(vids), "--suite", str(suite_dir), "--name", "broken", "--no-lpips",
            "--quiet"]
    capsys.readouterr()
    assert relic_cli.main(args + ["--out", str(tmp_path / "o1")]) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("relic:")]
    assert len(lines) == 3 and "relic: error:" in lines[-1]
    assert any(t1.task_id in ln and "frames" in ln for ln in lines) and any("cannot read frame" in ln for ln in lines)
    md = (tmp_path / "o1" / "leaderboard.md").read_text()
    assert "broken (INCOMPLETE: no means, see below)" in md and "INCOMPLETE 1/3: 2 missing" in md
    # --allow-missing: same run, exit 0, means over the one task it has, labelled as such
    assert relic_cli.main(args + ["--out", str(tmp_path / "o2"), "--allow-missing"]) == 0
    md = (tmp_path / "o2" / "leaderboard.md").read_text()
    assert "broken (INCOMPLETE: 1 of 3 tasks, --allow-missing)" in md
    # declaring the two tasks outside the model's action space makes it complete (n/a, with the reason)
    (vids / "not_applicable.json").write_text(f'{{"{t1.task_id}": "no look-away control", '
                                              f'"{t2.task_id}": "no mixed actions"}}')
    assert relic_cli.main(args + ["--out", str(tmp_path / "o3")]) == 0
    md = (tmp_path / "o3" / "leaderboard.md").read_text()
    assert f"`broken` on {t1.task_id}: no look-away control" in md and "1/3 + 2 n/a" in md


def test_unknown_model_exits_nonzero_before_running(suite_dir, tmp_path, capsys):
    for spec in ("nosuchmodel", "relic:/nonexistent/checkpoint", "noisy-oracle:warp=1", "oracle:x"):
        out = tmp_path / spec.replace("/", "_").replace(":", "_")
        rc = relic_cli.main(["bench", "run", "--models", f"static,{spec}", "--tasks", str(suite_dir), "--out",
                             str(out), "--no-lpips", "--quiet"])
        assert rc == 1, spec
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("relic: error:"), err
        assert not out.exists()


def test_lpips_weights_flag_refuses_a_wrong_file(suite_dir, tmp_path, capsys):
    bad = tmp_path / "alexnet.pth"
    bad.write_bytes(b"not the weights")
    rc = relic_cli.main(["bench", "run", "--models", "static", "--tasks", str(suite_dir), "--out",
                         str(tmp_path / "o"), "--lpips-weights", str(bad), "--quiet"])
    assert rc == 1
    assert "fails its SHA-256 check" in capsys.readouterr().err and not (tmp_path / "o").exists()
