"""Corpus writer/reader round trip, schema versioning and corruption detection."""
import json

import numpy as np
import pandas as pd
import pytest

from datagen import Corpus
from datagen.actions import CHANNELS, poses_to_actions
from datagen.capture.episode import frames_table
from datagen.conventions import intrinsics_from_fov, look_at
from datagen.corpus import format as F
from datagen.corpus.reader import Episode
from datagen.corpus.writer import EpisodeRecord, init_corpus, rebuild_manifest, write_episode, manifest_row
from datagen.curation.filters import curate


def _record(eid="s-0001_explore_00", n=80, w=16, h=10, seed=0):
    rng = np.random.default_rng(seed)
    c2w = np.stack([look_at([0.1 * i, 0.0, 1.5], [0.1 * i + 1.0, 0.2, 1.5]) for i in range(n)])
    rgb = rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 5.0, size=(n, h, w)).astype(np.float32)
    depth[:, 0, 0] = np.inf
    K = intrinsics_from_fov(w, h, 90.0)
    actions, gamma = poses_to_actions(c2w)
    cur = curate(c2w, 16.0, rgb=rgb, depth=depth)
    table = frames_table(c2w, K, 16.0, actions, cur.flags, cur.kept)
    rev = pd.DataFrame({"later": [10], "earlier": [1], "pose_dist_m": [0.9], "rot_dist_deg": [0.0],
                        "overlap": [0.6], "gap_s": [9 / 16]})
    meta = {"episode_id": eid, "scene_id": "s-0001", "family": "s", "scene_seed": 1, "split": "train",
            "generator": "explore", "params": {}, "seed": seed, "fps": 16.0, "num_frames": n,
            "duration_s": n / 16, "width": w, "height": h, "fov_deg": 90.0, "K": K.tolist(), "gamma": gamma,
            "captions": [{"start_frame": 0, "end_frame": n, "start_s": 0, "end_s": n / 16, "text": "A room.",
                          "objects": []}], "curation": cur.to_meta(), "num_revisit_pairs": 1}
    return EpisodeRecord(eid, rgb, depth, table, rev, meta), c2w, actions


@pytest.fixture
def corpus(tmp_path):
    init_corpus(tmp_path, {"name": "t"})
    rec, c2w, actions = _record()
    write_episode(tmp_path, rec)
    rebuild_manifest(tmp_path)
    return tmp_path, rec, c2w, actions


def test_action_channels_match_actions_module():
    assert tuple(CHANNELS) == F.ACTION_CHANNELS


def test_round_trip(corpus):
    path, rec, c2w, actions = corpus
    c = Corpus.open(path)
    assert list(c.manifest.columns) == list(F.MANIFEST_COLUMNS)
    assert c.manifest.episode_id.tolist() == [rec.episode_id]
    assert pd.read_csv(path / F.MANIFEST_CSV).episode_id.tolist() == [rec.episode_id]
    ep = c.episode(rec.episode_id)
    np.testing.assert_allclose(ep.poses(), c2w)
    np.testing.assert_array_equal(ep.actions(), actions)
    assert ep.gamma == pytest.approx(rec.meta["gamma"])
    np.testing.assert_array_equal(ep.rgb(3), rec.rgb[3])  # lossless
    np.testing.assert_array_equal(ep.rgb_all(), rec.rgb)
    np.testing.assert_array_equal(ep.depth(5), rec.depth[5])
    assert np.isinf(ep.depth(0)[0, 0])
    assert ep.frames.shape[0] == 80 and list(ep.frames.columns) == list(F.FRAME_COLUMNS)
    assert ep.revisits.later.tolist() == [10] and ep.status == "kept"
    assert ep.captions[0]["text"] == "A room."
    assert ep.K.shape == (3, 3) and ep.scene_id == "s-0001"
    assert len(c.split("train")) == 1 and len(c.split("test")) == 0
    assert c.verify() == []
    # the per-frame table is also plain CSV for other tools
    csv = pd.read_csv(path / "episodes" / rec.episode_id / "frames.csv")
    np.testing.assert_allclose(csv[list(F.C2W_COLUMNS)].to_numpy().reshape(-1, 4, 4), c2w, atol=1e-9)


def test_unknown_schema_version_refused(corpus):
    path, *_ = corpus
    h = json.loads((path / F.CORPUS_JSON).read_text())
    h["schema_version"] = 99
    (path / F.CORPUS_JSON).write_text(json.dumps(h))
    with pytest.raises(F.CorpusError, match="schema_version 99 is not supported"):
        Corpus.open(path)


def test_unknown_episode_version_refused(corpus):
    path, rec, *_ = corpus
    p = path / "episodes" / rec.episode_id / F.EPISODE_JSON
    m = json.loads(p.read_text())
    m["schema_version"] = 2
    p.write_text(json.dumps(m))
    with pytest.raises(F.CorpusError, match="schema_version 2"):
        Corpus.open(path).episode(rec.episode_id)


def test_flipped_png_byte_detected(corpus):
    path, rec, *_ = corpus
    p = path / "episodes" / rec.episode_id / "rgb" / "000004.png"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    c = Corpus.open(path)
    ep = c.episode(rec.episode_id)  # same size: opening succeeds ...
    with pytest.raises(F.CorpusIntegrityError, match="000004.png fails its sha256"):
        ep.rgb(4)  # ... but the content is never silently read
    ep.rgb(3)
    problems = c.verify()
    assert len(problems) == 1 and "000004.png" in problems[0]


def test_truncated_depth_and_missing_frame_detected(corpus):
    path, rec, *_ = corpus
    d = path / "episodes" / rec.episode_id
    (d / F.DEPTH_FILE).write_bytes((d / F.DEPTH_FILE).read_bytes()[:100])
    c = Corpus.open(path)
    with pytest.raises(F.CorpusIntegrityError, match="depth.npy has 100 bytes"):
        c.episode(rec.episode_id)
    assert any("depth.npy" in p for p in c.verify())
    (d / "rgb" / "000079.png").unlink()
    with pytest.raises(F.CorpusIntegrityError, match="missing"):
        Episode(d)


def test_partial_episode_without_metadata_detected(corpus):
    path, rec, *_ = corpus
    (path / "episodes" / rec.episode_id / F.EPISODE_JSON).unlink()
    c = Corpus.open(path)
    with pytest.raises(F.CorpusIntegrityError, match="episode.json is missing"):
        c.episode(rec.episode_id)
    assert c.verify()


def test_not_a_corpus(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus.json is missing"):
        Corpus.open(tmp_path)


def test_resume_refuses_other_config(tmp_path):
    init_corpus(tmp_path, {"a": 1})
    init_corpus(tmp_path, {"a": 1})
    with pytest.raises(ValueError, match="different config"):
        init_corpus(tmp_path, {"a": 2})


def test_manifest_row_fields():
    rec, *_ = _record()
    row = manifest_row({**rec.meta})
    assert set(row) == set(F.MANIFEST_COLUMNS)


def test_clip_and_time_reverse(corpus):
    path, rec, c2w, _ = corpus
    ep = Corpus.open(path).episode(rec.episode_id)
    cl = ep.clip(10, 20)
    np.testing.assert_array_equal(cl["rgb"], rec.rgb[10:30])
    np.testing.assert_allclose(cl["actions"], poses_to_actions(c2w[10:30])[0])
    tr = ep.clip(10, 20, rng=np.random.default_rng(0), time_reverse=True)
    idx = tr["indices"]
    p = int(np.argmax(idx))
    assert idx[0] == 10 and all(idx[p + k] == idx[p - k] for k in range(1, 20 - p))  # palindrome
    np.testing.assert_array_equal(tr["rgb"], rec.rgb[idx])
    np.testing.assert_allclose(tr["actions"], poses_to_actions(c2w[idx])[0])
    if p < 19:  # the reversed part walks backwards: dolly_out instead of dolly_in
        assert tr["actions"][p, 1] > 0 and tr["actions"][p, 0] == 0
    with pytest.raises(IndexError):
        ep.clip(70, 20)


def test_corrupt_manifest_refused(corpus):
    path, *_ = corpus
    (path / F.MANIFEST_PARQUET).write_bytes(b"not parquet")
    with pytest.raises(F.CorpusError, match="manifest.parquet is unreadable"):
        Corpus.open(path)
