"""`relic datagen build --engine ray` over UnrealCV servers (our embedded server standing in for UE):
actors attached to running endpoints, and actors that launch their own server on their node, where a
server killed in the middle of an episode is restarted by its actor and the episode redone. Both give
the corpus of the local engine over the same kind of server, byte for byte."""
from __future__ import annotations

import hashlib
import os
import sys

import pytest
import yaml

ray = pytest.importorskip("ray")

from datagen.capture.config import config_from_dict  # noqa: E402
from datagen.capture.ray_engine import build_corpus_ray  # noqa: E402
from datagen.corpus import format as F  # noqa: E402
from datagen.scenes.library import generate_scene, save_scene  # noqa: E402
from datagen.ue_launcher import InstancePool, free_port  # noqa: E402
from datagen.ue_launcher.build import build_with_pool  # noqa: E402

CFG = {"name": "ray-ue", "fps": 16, "width": 32, "height": 24,
       "scenes": [{"family": "apartment", "seeds": [1]}],
       "episodes": [{"generator": "explore", "duration_s": 3, "count": 3}]}


def serve_template(scene_file) -> list[str]:
    return [sys.executable, "-m", "relic_cli", "datagen", "serve", "--scene", str(scene_file), "--port", "{port}",
            "--width", "{width}", "--height", "{height}", "--no-save"]


def _sums(out):
    root = out / F.EPISODES_DIR
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("rayue")
    scene_file = d / "apartment-0001.json"
    save_scene(generate_scene("apartment", 1), scene_file)
    (d / "corpus.yaml").write_text(yaml.safe_dump(CFG))
    return d, scene_file


@pytest.fixture(scope="module")
def pool(setup):
    d, scene_file = setup
    p = InstancePool(serve_template(scene_file), n=2, base_port=free_port(), width=32, height=24,
                     log_dir=d / "logs", startup_timeout=60)
    with p:
        yield p


@pytest.fixture(scope="module")
def reference(setup, pool):
    """The local engine over the same servers."""
    d, _ = setup
    res = build_with_pool(config_from_dict(CFG), d / "reference", pool, progress=False, log=lambda m: None)
    assert res.built == 3 and not res.failed
    return d / "reference"


@pytest.fixture(scope="module")
def local_ray():
    from datagen import ray_session

    s = ray_session.start(None, num_cpus=2)
    yield s
    ray_session.stop(s)


def test_one_actor_per_running_endpoint(pool, reference, local_ray, tmp_path):
    res = build_corpus_ray(config_from_dict(CFG), tmp_path / "B", backend="unrealcv", endpoints=pool.addresses,
                           progress=False, log=lambda m: None)
    assert res.built == 3 and not res.failed and len(res.nodes) == 2
    assert _sums(tmp_path / "B") == _sums(reference)
    assert (tmp_path / "B" / F.MANIFEST_CSV).read_bytes() == (reference / F.MANIFEST_CSV).read_bytes()


def _kill_server_once(marker: str):
    """Backend wrapper: the first time any episode reaches its second batch (whoever creates `marker`), SIGKILL
    the actor's own launched server (found through the pid file the actor keeps) and fail like the
    client does when its server is gone. Defined in a function so Ray pickles it by value."""

    class Proxy:
        def __init__(self, backend):
            self._be, self._batches = backend, 0

        def __getattr__(self, name):
            return getattr(self._be, name)

        def capture_batch(self, poses, kinds):
            import glob
            import signal

            frames = self._be.capture_batch(poses, kinds)
            self._batches += 1
            if self._batches == 2:
                try:  # claim the one kill atomically: both actors can reach their second batch at once
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    return frames
                out = os.path.dirname(os.path.dirname(marker))  # marker: OUT/.server_logs/killed.marker
                for pf in glob.glob(os.path.join(out, ".server_logs", "ray-slot*.pid")):
                    pid = int(open(pf).read())
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")
                    if str(self._be.port).encode() in argv:
                        os.write(fd, f"{pid}\n".encode())
                        os.close(fd)
                        os.killpg(pid, signal.SIGKILL)
                        raise ConnectionError(f"server {pid} killed by the test")
                os.close(fd)
                raise AssertionError("the actor's server was not found")
            return frames

    class Wrapper:
        def __call__(self, backend, spec):
            return Proxy(backend)

    return Wrapper()


def test_actor_launches_its_server_and_restarts_it_mid_episode(setup, reference, local_ray, tmp_path):
    _, scene_file = setup
    out = tmp_path / "C"
    (out / ".server_logs").mkdir(parents=True)
    marker = out / ".server_logs" / "killed.marker"
    logs = []
    res = build_corpus_ray(config_from_dict(CFG), out, workers=2, backend="launch",
                           launch={"command": serve_template(scene_file), "startup_timeout": 60},
                           progress=False, log=logs.append, backend_wrapper=_kill_server_once(str(marker)))
    assert marker.exists(), logs
    assert sum(res.endpoint_restarts.values()) == 1, logs
    assert res.built == 3 and not res.failed and not res.endpoints_retired, (res.failed, logs)
    assert _sums(out) == _sums(reference)
    assert (out / F.MANIFEST_CSV).read_bytes() == (reference / F.MANIFEST_CSV).read_bytes()
    assert not list((out / ".server_logs").glob("ray-slot*.pid"))  # servers stopped at the end
