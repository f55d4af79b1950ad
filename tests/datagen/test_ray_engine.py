"""`relic datagen build --engine ray` on a local Ray (2 CPUs): the corpus is byte-identical to the local
engine's, an actor killed in the middle of an episode (ray.kill) is restarted and the episode redone,
and an interrupted build resumes."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from datagen.capture.config import load_config  # noqa: E402
from datagen.capture.pipeline import build_corpus  # noqa: E402
from datagen.capture.ray_engine import build_corpus_ray  # noqa: E402
from datagen.corpus import format as F  # noqa: E402

TINY = Path(__file__).resolve().parents[2] / "datagen" / "configs" / "tiny_corpus.yaml"  # 6 episodes, 48x32


def _episode_sums(out: Path) -> dict:
    """sha256 of every file under episodes/ (relative path -> digest)."""
    root = out / F.EPISODES_DIR
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _manifest_episodes(out: Path) -> bytes:
    return (out / F.MANIFEST_CSV).read_bytes()


@pytest.fixture(scope="module")
def cfg():
    return load_config(str(TINY))


@pytest.fixture(scope="module")
def local_corpus(cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "A"
    res = build_corpus(cfg, out, workers=2, progress=False)
    assert res.built == 6 and not res.failed
    return out


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the in-process builds of this module; they use it as is."""
    from datagen import ray_session

    s = ray_session.start(None, num_cpus=2)
    yield s
    ray_session.stop(s)


def test_cli_ray_build_is_byte_identical_to_local(local_corpus, tmp_path):
    """The issue's bar: `--limit 6 --workers 2` with --engine ray (a local Ray started by the command)."""
    out = tmp_path / "B"
    r = subprocess.run([sys.executable, "-m", "relic_cli", "datagen", "build", "--config", str(TINY), "--out", str(out),
                        "--limit", "6", "--workers", "2", "--engine", "ray", "--no-progress"],
                       capture_output=True, text=True, timeout=180, env={**os.environ, "RAY_ADDRESS": ""})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ray: local (start-up" in r.stdout and "6 built" in r.stdout, r.stdout
    a, b = _episode_sums(local_corpus), _episode_sums(out)
    assert len(a) > 6 * 5 and a == b
    assert _manifest_episodes(local_corpus) == _manifest_episodes(out)


def _kill_once(episode_id: str, marker: str):
    """A backend wrapper that, the first time `episode_id` is captured (no `marker` file yet), writes
    the marker after the first batch of frames and ray.kill()s its own actor mid-episode. Defined in a
    function so Ray pickles the classes by value (the test module is not importable in workers)."""

    class Proxy:
        def __init__(self, backend):
            self._be, self._batches = backend, 0

        def __getattr__(self, name):
            return getattr(self._be, name)

        def capture_batch(self, poses, kinds):
            import time

            import ray

            frames = self._be.capture_batch(poses, kinds)
            self._batches += 1
            if self._batches == 2 and not os.path.exists(marker):
                with open(marker, "w") as f:
                    f.write(f"{os.getpid()}\n")
                ray.kill(ray.get_runtime_context().current_actor, no_restart=False)
                time.sleep(120)  # the kill lands here: the episode is never finished by this process
                raise AssertionError("ray.kill did not kill the actor")
            return frames

    class Wrapper:
        def __call__(self, backend, spec):
            return Proxy(backend) if spec.episode_id == episode_id else backend

    return Wrapper()


def test_actor_killed_mid_episode_is_restarted_and_the_episode_redone(cfg, local_corpus, local_ray, tmp_path):
    from datagen.capture.config import plan_episodes

    victim = plan_episodes(cfg)[3].episode_id
    marker = tmp_path / "killed.pid"
    out = tmp_path / "B"
    logs = []
    res = build_corpus_ray(cfg, out, workers=2, progress=False, log=logs.append,
                           backend_wrapper=_kill_once(victim, str(marker)))
    assert marker.exists(), "the wrapper never ran: the episode was not captured by the actor"
    assert res.actor_deaths == 1, logs
    assert any(victim in line and "redone" in line for line in logs), logs
    assert res.built == 6 and not res.failed, (res.failed, logs)
    assert _episode_sums(out) == _episode_sums(local_corpus)
    assert _manifest_episodes(out) == _manifest_episodes(local_corpus)


def test_interrupted_build_resumes_with_either_engine(cfg, local_corpus, local_ray, tmp_path):
    out = tmp_path / "C"
    first = build_corpus(cfg, out, workers=1, progress=False, limit=2)  # a local build that stopped after 2
    assert first.built == 2
    (out / F.TMP_DIR).mkdir(exist_ok=True)
    (out / F.TMP_DIR / "leftover.123").mkdir()  # an episode in flight when it stopped
    res = build_corpus_ray(cfg, out, workers=2, progress=False, limit=2)
    assert (res.skipped, res.built) == (2, 2)
    res = build_corpus_ray(cfg, out, workers=2, progress=False)
    assert (res.skipped, res.built) == (4, 2) and not res.failed
    assert not (out / F.TMP_DIR / "leftover.123").exists()
    assert _episode_sums(out) == _episode_sums(local_corpus)
    assert _manifest_episodes(out) == _manifest_episodes(local_corpus)


def test_cli_refuses_ray_address_without_the_ray_engine(tmp_path):
    r = subprocess.run([sys.executable, "-m", "relic_cli", "datagen", "build", "--config", str(TINY),
                        "--out", str(tmp_path / "X"), "--ray-address", "auto"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "--ray-address needs --engine ray" in r.stderr
    assert not (tmp_path / "X").exists()
