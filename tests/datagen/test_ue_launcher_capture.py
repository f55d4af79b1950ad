"""Launcher + capture pipeline: `relic datagen build --backend unrealcv --launch ... --workers 2`
builds a corpus over two launched servers; a server SIGKILLed mid-episode is restarted and the
interrupted episode redone, giving a corpus identical to the uninterrupted one (each episode once)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from datagen import Corpus
from datagen.capture.config import config_from_dict
from datagen.scenes.library import generate_scene, save_scene
from datagen.ue_launcher import InstancePool, free_port
from datagen.ue_launcher.build import build_with_pool

FPS, DURATION, COUNT = 16, 3, 3
FRAMES = FPS * DURATION
CFG = {"name": "ue-launch", "fps": FPS, "width": 32, "height": 24,
       "scenes": [{"family": "apartment", "seeds": [1]}],
       "episodes": [{"generator": "explore", "duration_s": DURATION, "count": COUNT}]}


def serve_template(scene_file, debug=False) -> list[str]:
    return [sys.executable, "-m", "relic_cli", "datagen", "serve", "--scene", str(scene_file), "--port", "{port}",
            "--width", "{width}", "--height", "{height}", "--no-save"] + (["--log-level", "debug"] if debug else [])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("uebuild")
    scene_file = d / "apartment-0001.json"
    save_scene(generate_scene("apartment", 1), scene_file)
    cfg_file = d / "corpus.yaml"
    cfg_file.write_text(yaml.safe_dump(CFG))
    return d, scene_file, cfg_file


@pytest.fixture(scope="module")
def reference(setup):
    """Uninterrupted build through the CLI: two launched servers, one worker each."""
    d, scene_file, cfg_file = setup
    out = d / "reference"
    launch = " ".join(serve_template(scene_file))
    r = subprocess.run([sys.executable, "-m", "relic_cli", "datagen", "build", "--config", str(cfg_file),
                        "--out", str(out), "--backend", "unrealcv", "--launch", launch, "--workers", "2",
                        "--base-port", str(free_port()), "--no-progress"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "launched UnrealCV servers: 127.0.0.1:" in r.stdout
    eps = r.stdout.split("launched UnrealCV servers: ")[1].splitlines()[0].split(",")
    assert len(set(eps)) == 2
    logs = sorted((out / ".server_logs").glob("server-*.log"))
    assert len(logs) == 2 and all("connected" in p.read_text() for p in logs), "both servers served a worker"
    return out


def _lit_requests(text: str) -> int:
    return sum(1 for line in text.splitlines() if "request" in line and "/lit" in line)


def test_cli_build_with_launched_servers(reference):
    c = Corpus.open(reference)
    assert c.verify() == [] and len(c) == COUNT and c.manifest.episode_id.is_unique
    ep = c.episode(c.manifest.episode_id[0])
    assert ep.meta["backend"] == "unrealcv" and ep.rgb(0).shape == (24, 32, 3) and ep.num_frames == FRAMES


def test_server_killed_mid_episode_is_restarted_and_the_episode_redone(setup, reference, tmp_path):
    d, scene_file, _ = setup
    out = tmp_path / "corpus"
    logs = tmp_path / "logs"
    pool = InstancePool(serve_template(scene_file, debug=True), n=1, base_port=free_port(), width=32, height=24,
                        log_dir=logs, startup_timeout=60)
    killed = {}

    def kill_mid_first_episode():
        log = logs / f"server-{pool.instances[0].port}.log"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            n = _lit_requests(log.read_text()) if log.exists() else 0
            if n >= 8:  # the first episode is capturing (it needs FRAMES lit frames in all)
                killed["pid"] = pool.instances[0].pid
                killed["episodes_done"] = len(list((out / "episodes").glob("*/episode.json")))
                pool.instances[0].kill()
                return
            time.sleep(0.005)

    with pool:
        killer = threading.Thread(target=kill_mid_first_episode)
        killer.start()
        res = build_with_pool(config_from_dict(CFG), out, pool, progress=False, log=lambda m: None)
        killer.join()
        assert "pid" in killed, "the server was never killed"
        assert pool.instances[0].restarts == 1 and pool.instances[0].pid != killed["pid"]
    assert res.failed == [] and res.built == COUNT and res.endpoints_retired == []
    assert res.endpoint_restarts == {0: 1}
    # the kill really interrupted the first episode: no episode was finished yet, and the killed
    # server had answered fewer lit requests than one episode needs
    assert killed["episodes_done"] == 0
    log = (logs / f"server-{pool.instances[0].port}.log").read_text()
    first_run = log.split("=== ")[1]
    assert 8 <= _lit_requests(first_run) < FRAMES
    assert _lit_requests(log) >= COUNT * FRAMES + 8  # the interrupted episode was captured again

    # each episode exactly once, identical to the uninterrupted build
    got, ref = Corpus.open(out), Corpus.open(reference)
    assert got.verify() == [] and got.manifest.episode_id.is_unique
    assert sorted(got.episode_ids) == sorted(ref.episode_ids)
    assert sorted(p.name for p in (out / "episodes").iterdir()) == sorted(ref.episode_ids)
    for eid in ref.episode_ids:
        a, b = got.episode(eid), ref.episode(eid)
        np.testing.assert_array_equal(a.rgb_all(), b.rgb_all())
        np.testing.assert_array_equal(a.depth_all(), b.depth_all())
        np.testing.assert_array_equal(a.poses(), b.poses())
        pd.testing.assert_frame_equal(a.frames, b.frames)
        pd.testing.assert_frame_equal(a.revisits, b.revisits)
        assert a.meta == b.meta


def test_build_from_an_exported_unreal_scene_file(setup, tmp_path):
    """The real-UE path with our server standing in for the engine: the config names a kind "unreal"
    scene file written by ue_project's exporter (metadata only, UE units); the launched server
    renders; the pipeline matches the file's scene id to what the server reports."""
    import importlib.util
    from pathlib import Path

    from datagen import conventions as cv
    from datagen.capture.config import load_config
    from datagen.scenes.library import load_scene

    _, scene_file, _ = setup
    spec = importlib.util.spec_from_file_location(
        "relic_export_e2e", Path(__file__).resolve().parents[2] / "ue_project" / "Scripts" / "export_capture_metadata.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    src = generate_scene("apartment", 1)
    loc, rot = cv.c2w_to_ue_pose(src.spawn_c2w)
    corners = cv.ours_point_to_ue(np.stack([src.bounds_min, src.bounds_max]))
    objs = [{"name": o.name, "tags": [f"desc={o.description}", f"category={o.category}"],
             "bounds_min_cm": [0, 0, 0], "bounds_max_cm": [1, 1, 1]} for o in src.objects]
    # project "apartment" + level "0001" -> scene id "apartment-0001", the id our server reports
    d = mod.build_scene_dict("apartment", "/Game/Maps/0001", "0001", "an exported test level",
                             (corners.min(0).tolist(), corners.max(0).tolist()),
                             [{"name": "PlayerStart", "location_cm": list(loc), "rotation_deg": list(rot)}],
                             objs, camera_height_cm=src.camera_height * 100)
    mod.write_json_atomic(d, str(tmp_path / "level.json"))
    level = load_scene(tmp_path / "level.json")
    assert level.kind == "unreal" and level.scene_id == "apartment-0001"
    np.testing.assert_allclose(level.spawn_c2w, src.spawn_c2w, atol=1e-9)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(
        {**CFG, "scenes": [{"file": "level.json"}], "episodes": [{"generator": "explore", "duration_s": 2}]}))
    with InstancePool(serve_template(scene_file), n=1, base_port=free_port(), width=32, height=24,
                      startup_timeout=60) as pool:
        res = build_with_pool(load_config(tmp_path / "cfg.yaml"), tmp_path / "out", pool, progress=False,
                              log=lambda m: None)
    assert res.failed == [] and res.built == 1
    c = Corpus.open(tmp_path / "out")
    ep = c.episode(c.episode_ids[0])
    assert ep.meta["family"] == "unreal" and ep.meta["scene_description"] == "an exported test level"
    assert ep.num_frames == 2 * FPS and ep.rgb(0).shape == (24, 32, 3)
