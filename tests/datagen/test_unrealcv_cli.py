"""`relic datagen serve` as a separate process, driven by the real client through UnrealCVBackend."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from datagen.backends.embedded import EmbeddedBackend
from datagen.backends.unrealcv_client import UnrealCVBackend
from datagen.scenes.library import generate_scene, save_scene

W, H = 48, 32


def _launch(scene_file, *extra):
    cmd = [sys.executable, "-m", "relic_cli", "datagen", "serve", "--scene", str(scene_file), "--port", "0",
           "--width", str(W), "--height", str(H), *(extra or ("--no-save",))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()  # "listening on HOST:PORT ..." once bound
    m = re.search(r"listening on ([\d.]+):(\d+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"server did not start: {line!r} {proc.stderr.read()}")
    return proc, m.group(1), int(m.group(2))


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    scene = generate_scene("apartment", 3)
    path = tmp_path_factory.mktemp("serve") / "apartment-3.json"
    save_scene(scene, path)
    return path, scene


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_process_matches_in_process_and_stops_cleanly(scene_file, sig):
    path, scene = scene_file
    proc, host, port = _launch(path)
    try:
        ref = EmbeddedBackend(scene, W, H)
        rng = np.random.default_rng(int(sig))
        poses = []
        for _ in range(3):
            p = scene.sample_free_point(rng, radius=0.3)
            poses.append(ref.get_pose())
            poses[-1][:3, 3] = p
        with UnrealCVBackend(host, port, scene=path, timeout=20.0) as b:
            assert b.resolution() == (W, H)
            info = b.scene_info()
            assert info["scene_id"] == scene.scene_id and info["spawn_c2w"] == scene.spawn_c2w.tolist()
            for f in b.capture_batch(poses, ("rgb", "depth", "mask")):
                ref.set_pose(f.c2w)
                g = ref.capture(("rgb", "depth", "mask"))
                assert np.array_equal(f.rgb, g.rgb)
                assert np.array_equal(f.mask, g.mask)
                fin = np.isfinite(g.depth)
                assert np.allclose(f.depth[fin], g.depth[fin], rtol=1e-6, atol=1e-5)
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        assert "server stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_bad_scene_path_says_what_to_fix(tmp_path):
    r = subprocess.run([sys.executable, "-m", "relic_cli", "datagen", "serve", "--scene",
                        str(tmp_path / "missing.json"), "--port", "0", "--no-save"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "relic: error:" in r.stderr and "relic datagen scene" in r.stderr


def test_serve_port_in_use_says_what_to_fix(scene_file):
    path, _ = scene_file
    proc, host, port = _launch(path)
    try:
        r = subprocess.run([sys.executable, "-m", "relic_cli", "datagen", "serve", "--scene", str(path),
                            "--port", str(port), "--no-save"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "--port" in r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
