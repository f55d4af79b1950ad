"""Generators and controller through the UnrealCV client against our embedded protocol server:
the same seed gives the same path as the in-process embedded backend (up to the protocol's
text precision)."""
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
from datagen.trajectories import generate


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    scene_file = tmp_path_factory.mktemp("scene") / "apartment-0001.json"
    save_scene(generate_scene("apartment", 1), scene_file)
    p = subprocess.Popen([sys.executable, "-m", "relic_cli", "datagen", "serve", "--scene", str(scene_file),
                          "--port", "0", "--width", "32", "--height", "24", "--no-save"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    line = p.stdout.readline()
    m = re.search(r"listening on ([\d.]+):(\d+)", line)
    if not m:
        os.killpg(p.pid, signal.SIGKILL)
        pytest.fail(f"server did not start: {line!r}")
    yield (m.group(1), int(m.group(2))), scene_file
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    p.stdout.close()


@pytest.mark.parametrize("name", ["script_mixed", "revisit_return_to_start"])
def test_unrealcv_path_matches_embedded(server, name):
    (host, port), scene_file = server
    with UnrealCVBackend(host, port, scene=scene_file) as ucv:
        a = generate(name, ucv, seed=5, duration_s=8.0)
    b = generate(name, EmbeddedBackend(generate_scene("apartment", 1), width=32, height=24), seed=5, duration_s=8.0)
    assert a.num_frames == b.num_frames == 128
    np.testing.assert_allclose(a.poses, b.poses, atol=1e-3)
    assert [s["action"] for s in a.segments] == [s["action"] for s in b.segments]
