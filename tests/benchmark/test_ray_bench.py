"""`relic bench run --engine ray` on a local Ray (2 CPUs): the same scores and artefacts as the local
engine on the mini suite (speed metrics excepted: they are wall-clock measurements)."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from benchmark.harness import run_benchmark  # noqa: E402
from benchmark.tasks.io import load_suite  # noqa: E402
from benchmark.tasks.suite import build_suite, suite_spec  # noqa: E402

SPEED = {"fps", "chunk_latency_ms", "chunk_latency_p95_ms"}
MODELS = ["oracle", "static", "noisy-oracle:drift=1"]


@pytest.fixture(scope="module")
def suite_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini_suite_ray")
    build_suite(root, suite_spec("mini"), progress=False)
    return root


def _scores(out):
    df = pd.read_csv(out / "results.csv")
    return df[~df.metric.isin(SPEED)].reset_index(drop=True)


def test_ray_run_scores_exactly_like_the_local_run(suite_root, tmp_path):
    suite = load_suite(suite_root)
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    run_benchmark(MODELS, suite.tasks, local, suite_name=suite.name, suite_root=str(suite_root), lpips=False,
                  progress=False, report=False, workers=1)
    r = subprocess.run([sys.executable, "-m", "relic_cli", "bench", "run", "--tasks", str(suite_root),
                        "--models", ",".join(MODELS), "--out", str(on_ray), "--no-lpips", "--quiet",
                        "--engine", "ray"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = _scores(local), _scores(on_ray)
    assert len(a) > 100 and set(a.model) == set(b.model)
    pd.testing.assert_frame_equal(a, b, check_exact=True)  # same rows, same order, same values
    speed = pd.read_csv(on_ray / "results.csv")
    assert (speed[speed.metric == "fps"]["value"] > 0).all()  # measured on the Ray workers
    info = json.loads((on_ray / "run.json").read_text())
    assert info["engine"] == "ray" and not info["failures"]
    for sub in ("curves", "trajectories"):  # the per-task artefacts hold the same arrays
        files = sorted(p.relative_to(local) for p in (local / sub).rglob("*.npz"))
        assert files and files == sorted(p.relative_to(on_ray) for p in (on_ray / sub).rglob("*.npz"))
        for rel in files:
            x, y = np.load(local / rel), np.load(on_ray / rel)
            assert set(x.files) == set(y.files)
            for k in x.files:
                np.testing.assert_array_equal(x[k], y[k])
    strips = sorted(p.relative_to(local) for p in (local / "strips").rglob("*.png"))
    assert strips and all((local / p).read_bytes() == (on_ray / p).read_bytes() for p in strips)


def test_ray_options_need_the_ray_engine(tmp_path):
    r = subprocess.run([sys.executable, "-m", "relic_cli", "bench", "run", "--out", str(tmp_path / "x"),
                        "--ray-address", "auto"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "need --engine ray" in r.stderr
