"""The UnrealCV capture path against our embedded protocol server (`relic datagen serve`), including
spreading episodes over two servers and re-queueing a killed server's episodes on the other."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from datagen import Corpus
from datagen.actions import poses_to_actions
from datagen.capture.config import config_from_dict
from datagen.capture.pipeline import build_corpus
from datagen.corpus import format as F
from datagen.scenes.library import generate_scene, save_scene

CFG = {
    "name": "test-ucv", "fps": 16, "width": 32, "height": 24,
    "scenes": [{"family": "apartment", "seeds": [1]}],
    "episodes": [{"generator": "explore", "duration_s": 5, "count": 6}],
}


def _serve(scene_file):
    p = subprocess.Popen([sys.executable, "-m", "relic_cli", "datagen", "serve", "--scene", str(scene_file),
                          "--port", "0", "--width", "32", "--height", "24", "--no-save"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    line = p.stdout.readline()
    m = re.search(r"listening on ([\d.]+):(\d+)", line)
    if not m:
        p.kill()
        pytest.fail(f"server did not start: {line!r}")
    return p, (m.group(1), int(m.group(2)))


@pytest.fixture
def servers(tmp_path):
    scene_file = tmp_path / "apartment-0001.json"
    save_scene(generate_scene("apartment", 1), scene_file)
    procs = [_serve(scene_file), _serve(scene_file)]
    yield procs
    for p, _ in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        p.stdout.close()


def test_endpoint_failure_requeues_on_the_other_server(servers, tmp_path):
    (pa, ea), (pb, eb) = servers
    out = tmp_path / "corpus"

    def kill_b_after_first_episode():
        d = out / F.EPISODES_DIR
        deadline = time.time() + 120
        while time.time() < deadline:
            if d.is_dir() and any((p / F.EPISODE_JSON).is_file() for p in d.iterdir()):
                os.killpg(pb.pid, signal.SIGKILL)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_b_after_first_episode)
    killer.start()
    res = build_corpus(config_from_dict(CFG), out, backend="unrealcv", endpoints=[ea, eb], progress=False)
    killer.join()
    assert pb.poll() is not None, "server B should have been killed"
    assert res.failed == [] and res.built == 6
    assert eb in res.endpoints_retired and ea not in res.endpoints_retired
    c = Corpus.open(out)
    assert c.verify() == [] and len(c) == 6 and c.manifest.episode_id.is_unique
    ep = c.episode(c.manifest.episode_id[0])
    assert ep.meta["backend"] == "unrealcv" and ep.rgb(0).shape == (24, 32, 3)
    np.testing.assert_allclose(ep.actions(), poses_to_actions(ep.poses())[0], atol=1e-6)
    assert np.isfinite(ep.depth_all()).mean() > 0.5  # indoors: most pixels hit geometry


def test_episodes_for_a_scene_no_server_hosts_fail_clearly(servers, tmp_path):
    (_, ea), _ = servers
    cfg = config_from_dict({**CFG, "scenes": [{"family": "office", "seeds": [2]}],
                            "episodes": [{"generator": "explore", "duration_s": 5}]})
    res = build_corpus(cfg, tmp_path / "c", backend="unrealcv", endpoints=[ea], progress=False)
    assert res.built == 0 and len(res.failed) == 1
    assert "no live endpoint serves scene office-0002" in res.failed[0][1]
