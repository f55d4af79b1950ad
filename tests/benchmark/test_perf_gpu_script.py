"""perf/perf_gpu.py runs end to end on the CPU at tiny size and refuses the full size without a GPU."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "perf" / "perf_gpu.py"


def test_perf_gpu_tiny_cpu(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--out", str(tmp_path),
                        "--chunks", "3", "--warmup", "1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "perf_gpu.json").read_text())
    assert res["device"] == "cpu" and res["tiny"] is True
    fps = res["streaming"]["frames_per_s"]
    assert isinstance(fps, float) and math.isfinite(fps) and fps > 0
    assert [r["stage"] for r in res["train"]] == ["teacher", "student_init", "distill"]
    for row in res["train"]:
        assert row["status"] == "ok"
        assert math.isfinite(row["peak_mem_bytes"]) and row["peak_mem_bytes"] > 0
        assert all(math.isfinite(v) for v in row["metrics"].values())
    md = (tmp_path / "perf_gpu.md").read_text()
    assert "device: cpu" in md and "TINY" in md
    assert md.count("generated frames/s") == 1
    for stage in ("teacher", "student_init", "distill"):
        assert sum(line.startswith(f"| {stage} | ok |") for line in md.splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_perf_gpu_refuses_without_gpu(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 1
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "no GPU" in lines[0]
    assert not (tmp_path / "perf_gpu.json").exists()
