"""Captions (static content only), scene splits, action balance."""
import numpy as np
import pytest

from datagen.curation import balance, captions, splits


def test_captions_one_per_5s_segment_and_only_visible_objects():
    fps, n, h, w = 16.0, 200, 10, 20  # 12.5 s -> 3 segments (5, 5, 2.5 s)
    mask = np.full((n, h, w), -1, np.int32)
    mask[:80, :, :10] = 0  # sofa fills half the view in segment 0
    mask[80:, :, 10:] = 1  # lamp in segments 1-2
    mask[80:82, 0, 0] = 2  # rug: 1 pixel for 2 frames -> not "in view"
    descs = ["a green velvet sofa", "a brass floor lamp", "a red rug"]
    caps = captions.caption_segments(mask, fps, "A small living room with white walls", descs, ["sofa_0", "lamp_1", "rug_2"])
    assert [(c["start_frame"], c["end_frame"]) for c in caps] == [(0, 80), (80, 160), (160, 200)]
    assert caps[0]["text"] == "A small living room with white walls. In view: a green velvet sofa."
    assert caps[1]["objects"] == ["lamp_1"] and "rug" not in caps[1]["text"]
    assert caps[2]["end_s"] == pytest.approx(12.5)


def test_captions_have_no_motion_words():
    mask = np.zeros((100, 4, 4), np.int32)
    caps = captions.caption_segments(mask, 16.0, "A forest clearing", ["a tree turning in the wind"], ["tree"])
    for c in caps:
        assert not captions.has_motion_words(c["text"])
    assert captions.has_motion_words("The camera pans left")
    assert caps[0]["text"] == "A forest clearing."


def test_captions_without_masks_use_scene_description():
    caps = captions.caption_segments(None, 16.0, "An office", ["a desk"], num_frames=90)
    assert len(caps) == 2 and caps[0]["text"] == "An office."


def test_scene_split_deterministic_and_proportions():
    ids = [f"fam-{i:04d}" for i in range(2000)]
    s = [splits.scene_split(i) for i in ids]
    assert s == [splits.scene_split(i) for i in ids]
    frac = {k: s.count(k) / len(s) for k in splits.SPLITS}
    assert 0.76 < frac["train"] < 0.84 and 0.07 < frac["val"] < 0.13 and 0.07 < frac["test"] < 0.13
    test_seeds = splits.seeds_for_split(lambda k: f"fam-{k:04d}", "test", 3)
    assert all(splits.is_test_scene(f"fam-{k:04d}") for k in test_seeds)
    with pytest.raises(ValueError):
        splits.scene_split("")


def test_balance_stats_and_rebalancing():
    # 3 episodes dominated by dolly_in, 1 with pans: rebalancing must up-weight the pan episode
    acts = []
    for e in range(4):
        a = np.zeros((50, 13), np.float32)
        if e < 3:
            a[:, 0] = 1.0
        else:
            a[:, 8] = 2.0
            a[:, 9] = 0.0
        acts.append(a)
    fr = np.array([[balance.active_fractions(a)[c] for c in balance.ACTION_CHANNELS] for a in acts])
    assert fr[0, 0] == 1.0 and fr[3, 8] == 1.0
    w = balance.rebalance_weights(fr)
    assert w.mean() == pytest.approx(1.0) and w[3] == pytest.approx(w[:3].sum())  # exact for one-hot episodes
    assert (w > 0).all()
    st = balance.channel_stats(fr, np.full(4, 50), w)
    assert st.frequency[0] == pytest.approx(0.75)
    assert st.balanced_frequency[0] == pytest.approx(st.balanced_frequency[8])
    assert st.frequency[8] == pytest.approx(0.25)


def test_caption_uses_only_the_scene_phrase():
    mask = np.zeros((20, 4, 4), np.int32)
    caps = captions.caption_segments(mask, 16.0, "A 2-room flat: a kitchen with a fridge; a bedroom with a bed.",
                                     ["a steel fridge"], ["fridge_00"])
    assert caps[0]["text"] == "A 2-room flat. In view: a steel fridge."


def test_rebalance_keeps_every_episode_and_moves_toward_uniform():
    rng = np.random.default_rng(0)
    fr = rng.uniform(0, 1, size=(40, 13)) * np.r_[np.full(3, 5.0), np.ones(10)]  # 3 dominant channels
    w = balance.rebalance_weights(fr)
    assert (w > 0.2).all()
    q = fr / fr.sum(1, keepdims=True)
    u = np.full(13, 1 / 13)
    before = np.linalg.norm(q.mean(0) - u)
    after = np.linalg.norm((q * w[:, None]).sum(0) / w.sum() - u)
    assert after < before
