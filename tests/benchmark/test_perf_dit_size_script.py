"""perf/perf_dit_size.py measures each requested DiT size (streaming + a teacher step) and rejects bad sizes."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "perf" / "perf_dit_size.py"


def _run(tmp_path, sizes):
    return subprocess.run([sys.executable, str(SCRIPT), "--config", "tiny", "--sizes", sizes, "--threads", "1",
                           "--chunks", "2", "--latent-frames", "3", "--train-repeats", "1",
                           "--out", str(tmp_path / "dit_size.md")], capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_two_sizes_are_measured_and_the_larger_one_has_more_parameters(tmp_path):
    r = _run(tmp_path, "32x1,64x2")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "dit_size.json").read_text())
    small, large = res["rows"]
    assert (small["width"], small["depth"], small["heads"]) == (32, 1, 1) and (large["width"], large["heads"]) == (64, 2)
    assert large["params"] > small["params"]
    for row in res["rows"]:
        assert row["frames_per_s"] > 0 and row["teacher_step_s"] > 0 and row["kv_tokens_held"] > 0
    md = (tmp_path / "dit_size.md").read_text()
    assert "| 32 x 1 |" in md and "| 64 x 2 |" in md and "teacher step s (3 latents)" in md


def test_a_width_that_is_not_a_multiple_of_32_is_refused(tmp_path):
    r = _run(tmp_path, "100x2")
    assert r.returncode != 0 and "multiple of 32" in r.stderr
    assert not (tmp_path / "dit_size.md").exists()
