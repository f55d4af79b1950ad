"""revisit_consistency_gain and the re-observation gate on a synthetic world computed exactly with
numpy (no renderer): a camera turning on the spot inside a textured cylinder, looking away and back.
Every frame is a function of the viewing direction, so what a model shows twice is known exactly."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.metrics.image_quality import psnr, ssim
from benchmark.metrics.retrieval import CONTROL_COVIS_MAX, REOBSERVE_MIN, score_revisits

W, H, R, FPS = 64, 32, 3.0, 16.0
K = np.array([[W / 2, 0, W / 2], [0, W / 2, H / 2], [0, 0, 1.0]])
YAW = np.concatenate([np.arange(49) * 3.75, 180 - np.arange(1, 49) * 3.75])  # 0 -> 180 -> 0 deg, 97 frames
REVISITS = [(96 - k, k) for k in (0, 8, 16, 24, 32)]  # same yaw, gaps 6.0 .. 2.0 s


def _poses(yaw_deg) -> np.ndarray:
    out = np.repeat(np.eye(4)[None], len(yaw_deg), 0)
    a = np.radians(yaw_deg)
    out[:, 0, 0], out[:, 0, 2], out[:, 2, 0], out[:, 2, 2] = np.cos(a), np.sin(a), -np.sin(a), np.cos(a)
    return out


def _panorama(seed: int) -> np.ndarray:
    """(H, 720, 3) uint8 texture of the cylinder wall: 0.5 deg per column, heights -1.5..1.5 m."""
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((H, 720, 3)) * 255, (0, 0), 1.5)
    img += 60 * np.sin(np.arange(720) / 720 * 2 * np.pi * 3)[None, :, None] * np.array([1, -1, 0.5])
    return np.clip(img, 0, 255).astype(np.uint8)


def _render(yaw_deg, pano) -> tuple[np.ndarray, np.ndarray]:
    """Frames (N,H,W,3) and planar depth (N,H,W) of the cylinder of radius R around the camera."""
    phi = np.arctan((np.arange(W) + 0.5 - K[0, 2]) / K[0, 0])           # column angle from the optical axis
    depth = np.broadcast_to(R * np.cos(phi)[None, :], (H, W)).astype(np.float32)
    height = (np.arange(H) + 0.5 - K[1, 2])[:, None] / K[1, 1] * depth  # metres on the wall
    rows = np.clip(((height + 1.5) / 3.0 * H).astype(int), 0, H - 1)
    frames = []
    for y in yaw_deg:
        cols = (np.round((y + np.degrees(phi)) * 2).astype(int) % 720)[None, :].repeat(H, 0)
        frames.append(pano[rows, cols])
    return np.stack(frames), np.repeat(depth[None], len(yaw_deg), 0)


@pytest.fixture(scope="module")
def world():
    gt, depth = _render(YAW, _panorama(0))
    rv = pd.DataFrame({"later": [a for a, _ in REVISITS], "earlier": [b for _, b in REVISITS]})
    rv["gap_s"] = (rv["later"] - rv["earlier"]) / FPS
    return gt, depth, _poses(YAW), rv


def _score(frames, world, revisits=None):
    gt, depth, poses, rv = world
    per = {"psnr": psnr(frames, gt), "ssim": ssim(frames, gt), "lpips": np.full(len(gt), np.nan)}
    return score_revisits(frames, gt, depth, poses, K, rv if revisits is None else revisits, per, None)


def test_ground_truth_scores_clearly_positive_a_static_video_zero(world):
    gt = world[0]
    m, table = _score(gt, world)
    s, _ = _score(np.repeat(gt[:1], len(gt), 0), world)
    assert m["revisit_pairs"] == 5 and m["revisit_pairs_reobserved"] == 5
    assert (table["n_controls"] > 0).all()   # each later view has earlier frames facing away (>= 81 deg)
    assert m["revisit_gain_pairs"] == 5 and m["revisit_gain_controls"] == table["n_controls"].sum()
    assert m["revisit_consistency_gain"] >= 10.0
    assert s["revisit_consistency_gain"] == pytest.approx(0.0, abs=1e-9)  # every thumbnail PSNR is the cap


def test_a_video_that_shows_nothing_after_frame_0_does_not_gain(world):
    """Frame 0, then its mean colour (held, or faded into over 8 frames, with a little noise so no two
    frames are identical): the same everywhere, so no evidence of memory. Protocol 6's gap-matched
    controls gave such videos 13-20 dB on the smoke suite, above the ground truth."""
    gt = world[0].astype(np.float64)
    n = len(gt)
    mean0 = gt[0].mean(axis=(0, 1))
    alpha = np.clip(1 - np.arange(n) / 8.0, 0, 1)[:, None, None, None]
    noise = np.random.default_rng(3).normal(size=gt.shape) * 0.7
    for frames in (np.concatenate([gt[:1], np.broadcast_to(mean0, gt[1:].shape)]),
                   alpha * gt[:1] + (1 - alpha) * mean0 + noise * (1 - alpha)):
        m, table = _score(np.clip(frames, 0, 255).round().astype(np.uint8), world)
        assert m["revisit_gain_pairs"] == 5
        assert m["revisit_consistency_gain"] <= 0.0
        assert table.loc[table["earlier"] == 0, "gain"].iloc[0] < -10   # the given view is not shown again


def test_shuffled_and_reversed_frames_lose_the_gain(world):
    gt = world[0]
    g = _score(gt, world)[0]["revisit_consistency_gain"]
    rng = np.random.default_rng(5)
    for frames in (gt[np.r_[0, 1 + rng.permutation(len(gt) - 1)]], np.concatenate([gt[:1], np.roll(gt[1:], 20, 0)])):
        assert _score(frames, world)[0]["revisit_consistency_gain"] <= g - 3.0


def test_consistent_hallucination_scores_positive_but_not_on_fidelity(world):
    """A model that shows other content, but the same content whenever it looks the same way, is
    self-consistent (gain like the ground truth's) while its revisit PSNR vs GT is low; one that
    forgets (new content at the revisits) loses the gain."""
    gt = world[0]
    halluc = _render(YAW, _panorama(1))[0]
    m_gt, m_h = _score(gt, world)[0], _score(halluc, world)[0]
    assert m_h["revisit_consistency_gain"] >= 10.0
    assert m_h["revisit_psnr_gt"] < m_gt["revisit_psnr_gt"] - 20
    forget = halluc.copy()
    forget[[a for a, _ in REVISITS]] = _render(YAW[[a for a, _ in REVISITS]], _panorama(2))[0]
    assert _score(forget, world)[0]["revisit_consistency_gain"] < m_h["revisit_consistency_gain"] - 5.0


def test_no_control_pairs_gives_nan_with_the_count(world):
    gt, depth, poses, rv = world
    # (10, 2): 30 deg apart, and every earlier frame (yaw 3.75 .. 33.75 deg) sees part of frame 10's view
    short = pd.DataFrame({"later": [10], "earlier": [2], "gap_s": [8 / FPS]})
    m, table = _score(gt, world, short)
    assert m["revisit_pairs"] == 1 and table["n_controls"].tolist() == [0]
    assert np.isnan(m["revisit_consistency_gain"]) and m["revisit_gain_pairs"] == 0
    assert np.isfinite(m["revisit_psnr_gt"])  # the other revisit metrics are still defined
    assert CONTROL_COVIS_MAX < REOBSERVE_MIN


def test_reobservation_gate_drops_pairs_that_do_not_return(world):
    gt, depth, poses, rv = world
    bogus = pd.concat([rv, pd.DataFrame({"later": [60], "earlier": [10], "gap_s": [50 / FPS]})],  # 135 vs 37.5 deg
                      ignore_index=True)
    m, table = _score(gt, world, bogus)
    assert m["revisit_pairs_annotated"] == 6 and m["revisit_pairs_reobserved"] == 5 and m["revisit_pairs"] == 5
    assert (60, 10) not in set(zip(table["later"], table["earlier"]))
    empty, t = _score(gt, world, rv.iloc[:0])
    assert empty["revisit_pairs"] == 0 and np.isnan(empty["revisit_consistency_gain"]) and t.empty
