"""End-to-end corpus build with the embedded backend (tiny corpus), resume-skip, config errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from datagen import Corpus
from datagen.actions import poses_to_actions
from datagen.capture.config import config_from_dict, load_config, plan_episodes
from datagen.capture.pipeline import build_corpus
from datagen.corpus import format as F
from datagen.curation.splits import scene_split

TINY = {
    "name": "test-tiny", "seed": 0, "fps": 16, "width": 32, "height": 24,
    "scenes": [{"family": "apartment", "seeds": [1]}, {"family": "office", "seeds": [2]}],
    "episodes": [{"generator": "explore", "duration_s": 5}, {"generator": "revisit_pan360", "duration_s": 8}],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    cfg = config_from_dict(TINY)
    res = build_corpus(cfg, out, workers=2, progress=False)
    return out, cfg, res


def test_build_writes_every_planned_episode(built):
    out, cfg, res = built
    assert res.failed == [] and res.built == 4 and res.frames == 2 * (80 + 128)
    c = Corpus.open(out)
    assert sorted(c.manifest.episode_id) == sorted(s.episode_id for s in plan_episodes(cfg))
    assert c.verify() == []
    assert (out / F.MANIFEST_CSV).is_file() and not any((out / F.TMP_DIR).iterdir())


def test_episode_contents_follow_the_format(built):
    out, cfg, _ = built
    c = Corpus.open(out)
    for eid in c.manifest.episode_id:
        ep = c.episode(eid)
        poses = ep.poses()
        n = 80 if ep.meta["generator"] == "explore" else 128
        assert poses.shape == (n, 4, 4) and ep.rgb(0).shape == (24, 32, 3) and ep.depth(n - 1).shape == (24, 32)
        # labels are those of the CAPTURED poses
        a, g = poses_to_actions(poses)
        np.testing.assert_allclose(ep.actions(), a, atol=1e-6)
        assert ep.gamma == pytest.approx(g, rel=1e-9)
        # raw UE columns agree with the pose
        assert ep.frames.ue_z_cm.to_numpy() == pytest.approx(poses[:, 2, 3] * 100)
        assert ep.split == scene_split(ep.scene_id)
        assert len(ep.captions) == (1 if n == 80 else 2) and ep.captions[-1]["end_frame"] == n
        assert ep.K[0, 0] == pytest.approx(16.0)  # 32 px at 90 degrees
        assert set(ep.revisits.columns) == set(F.REVISIT_COLUMNS)
    pans = c.manifest[c.manifest.generator == "revisit_pan360"]
    assert (pans.num_revisit_pairs > 0).all(), "a 360-degree pan must revisit its first view"


def test_rerun_skips_finished_episodes(built):
    out, cfg, _ = built
    before = (out / F.MANIFEST_CSV).read_bytes()
    res = build_corpus(cfg, out, workers=1, progress=False)
    assert res.built == 0 and res.skipped == 4
    assert (out / F.MANIFEST_CSV).read_bytes() == before


def test_broken_episode_is_recaptured(built, tmp_path):
    out, cfg, _ = built
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(out, copy)
    eid = sorted(p.name for p in (copy / "episodes").iterdir())[0]
    good = (copy / "episodes" / eid / F.DEPTH_FILE).read_bytes()
    (copy / "episodes" / eid / F.DEPTH_FILE).write_bytes(good[:-10])  # truncated
    res = build_corpus(cfg, copy, workers=1, progress=False)
    assert res.built == 1 and res.skipped == 3
    assert (copy / "episodes" / eid / F.DEPTH_FILE).read_bytes() == good  # deterministic re-capture
    assert Corpus.open(copy).verify() == []


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "relic_cli", "datagen", "build", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("patch,needle", [
    ({"fps": -3}, "config (c.yaml).fps: must be a positive number"),
    ({"widht": 32}, "unknown key(s) ['widht']"),
    ({"episodes": [{"generator": "explore", "duration_s": "long"}]}, "episodes[0].duration_s: must be a positive number"),
    ({"episodes": [{"generator": "teleport", "duration_s": 5}]}, "episodes[0].generator: unknown generator 'teleport'"),
    ({"scenes": [{"family": "castle", "seeds": [1]}]}, "scenes[0].family: unknown scene family 'castle'"),
    ({"curation": {"max_pan_deg_s": "x"}}, "curation.max_pan_deg_s: must be a non-negative number"),
    ({"captions": {"segment": 5}}, "captions: unknown key(s) ['segment']"),
])
def test_bad_config_errors_name_the_key(tmp_path, patch, needle):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({**TINY, **patch}))
    r = _cli("--config", str(p), "--out", str(tmp_path / "out"))
    assert r.returncode == 1
    assert r.stderr.startswith("relic: error:") and needle in r.stderr, r.stderr


def test_default_config_is_valid():
    cfg = load_config(None)
    specs = plan_episodes(cfg)
    assert {s.split for s in specs} == {"train", "val", "test"}
    assert len({s.family for s in specs}) >= 3 and cfg.fps == 16
    assert any(s.generator.startswith("revisit_") for s in specs)
    assert len({s.episode_id for s in specs}) == len(specs)


def test_scene_ids_match_the_scene_library():
    from datagen.capture.config import scene_id_for
    from datagen.scenes.library import generate_scene

    assert scene_id_for("office", 2) == generate_scene("office", 2).scene_id


def test_scene_file_entries_resolve_relative_to_the_yaml(tmp_path):
    from datagen.scenes.library import generate_scene, save_scene

    (tmp_path / "scenes").mkdir()
    save_scene(generate_scene("park", 3), tmp_path / "scenes" / "p.json")
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({**TINY, "scenes": [{"file": "scenes/p.json"}]}))
    specs = plan_episodes(load_config(p))
    assert [s.scene_id for s in specs] == ["park-0003", "park-0003"]
    assert specs[0].scene_file == str((tmp_path / "scenes" / "p.json").resolve())
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY, "scenes": [{"file": "scenes/missing.json"}]}))
    with pytest.raises(ValueError, match=r"scenes\[0\].file: scene file .*missing.json does not exist"):
        plan_episodes(load_config(bad))


def test_endpoint_and_backend_arguments():
    from datagen.capture.pipeline import parse_endpoints

    assert parse_endpoints("10.0.0.5:9000, localhost:9001") == [("10.0.0.5", 9000), ("localhost", 9001)]
    with pytest.raises(ValueError, match="'nohost' is not host:port"):
        parse_endpoints("nohost")
    cfg = config_from_dict(TINY)
    with pytest.raises(ValueError, match="needs at least one endpoint"):
        build_corpus(cfg, "/nonexistent/never", backend="unrealcv", endpoints=[])
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        build_corpus(cfg, "/nonexistent/never", workers=0)


def test_second_concurrent_build_is_refused(built):
    from datagen.capture.pipeline import _lock

    out, cfg, _ = built
    held = _lock(out)
    try:
        with pytest.raises(RuntimeError, match="another `relic datagen build` is writing"):
            build_corpus(cfg, out, workers=1, progress=False)
    finally:
        held.close()
    assert build_corpus(cfg, out, workers=1, progress=False).skipped == 4


def test_bit_flipped_file_is_recaptured_on_resume(built, tmp_path):
    """Same size, different bytes: only the checksum can tell; resume re-captures that episode."""
    out, cfg, _ = built
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(out, copy)
    eid = sorted(p.name for p in (copy / "episodes").iterdir())[1]
    f = copy / "episodes" / eid / "rgb" / "000002.png"
    good = f.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x10
    f.write_bytes(bytes(bad))
    assert len(Corpus.open(copy).verify()) == 1
    res = build_corpus(cfg, copy, workers=1, progress=False)
    assert res.built == 1 and res.skipped == 3
    assert f.read_bytes() == good  # deterministic re-capture
    assert Corpus.open(copy).verify() == []
