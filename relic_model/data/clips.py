"""Clip sampling from a ``datagen.Corpus`` for training.

``CorpusClips(corpus, split, height, width, fps)`` samples clips of ``T`` video frames:

1. an episode of the split with probability proportional to ``sample_weight x kept frames``
   (manifest columns), restricted to episodes with a curated kept segment of at least
   ``T x stride`` frames, where ``stride = max(1, round(episode fps / model fps))``;
2. a start frame uniformly inside such a segment; frames ``start, start+stride, ...``;
3. with probability ``time_reverse_prob`` the paper's time-reverse augmentation
   (``datagen.augment.time_reverse``: pivot, palindrome, labels recomputed from the poses);
   With probability ``pause_prob`` (default 0: off) the clip is then paused (``datagen.augment.pause``:
   frame k held to the end, k = 0 for half of them: a still shot), labels recomputed from the poses;
4. actions: the corpus labels (episode gamma) when stride is 1 and the clip is not reversed,
   otherwise (and for paused clips) recomputed from the clip's poses with ``datagen.actions.poses_to_actions`` (clip
   gamma); relative poses integrated from those actions (``data.controls``);
5. frames resized to the model resolution with area interpolation (uint8 RGB);
6. caption: the text of the caption segment containing the clip's first frame ("" if none).

All randomness comes from the ``numpy.random.Generator`` passed to ``sample``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datagen import Corpus
from datagen.actions import actions_to_poses, poses_to_actions
from datagen.augment import pause, time_reverse


@dataclass
class Clip:
    frames: np.ndarray    # (T, H, W, 3) uint8
    actions: np.ndarray   # (T, 13) float32, row i = motion i -> i+1
    gamma: float          # metres per unit translation label
    poses: np.ndarray     # (T, 4, 4) float64 relative to frame 0 (integrated from actions)
    text: str
    source: dict


class CorpusClips:
    def __init__(self, corpus, split: str = "train", height: int = 64, width: int = 112, fps: float = 16.0,
                 time_reverse_prob: float = 0.0, pause_prob: float = 0.0):
        self.corpus = corpus if hasattr(corpus, "manifest") else Corpus.open(corpus)
        self.rows = self.corpus.split(split)
        if len(self.rows) == 0:
            raise ValueError(f"corpus {self.corpus.path} has no usable episodes in split '{split}'")
        self.split, self.H, self.W, self.fps = split, int(height), int(width), float(fps)
        self.time_reverse_prob = float(time_reverse_prob)
        self.pause_prob = float(pause_prob)
        if not 0.0 <= self.pause_prob <= 1.0:
            raise ValueError(f"pause_prob must be in [0, 1], got {pause_prob}")
        self._eps: dict = {}

    def episode(self, eid: str):
        ep = self._eps.get(eid)
        if ep is None:
            ep = self._eps[eid] = self.corpus.episode(eid)
        return ep

    def stride(self, ep) -> int:
        return max(1, int(round(ep.fps / self.fps)))

    def _segments(self, ep, need_frames: int) -> list[tuple[int, int]]:
        need = need_frames * self.stride(ep) - (self.stride(ep) - 1)
        segs = ep.kept_segments or [(0, ep.num_frames)]
        return [(a, b) for a, b in segs if b - a >= need]

    def max_clip_frames(self) -> int:
        """Longest clip (frames at model fps) that some episode of the split can provide."""
        best = 0
        for eid in self.rows["episode_id"]:
            ep = self.episode(eid)
            segs = ep.kept_segments or [(0, ep.num_frames)]
            s = self.stride(ep)
            best = max(best, max(((b - a - 1) // s + 1 for a, b in segs), default=0))
        return best

    def sample(self, num_frames: int, rng: np.random.Generator) -> Clip:
        T = int(num_frames)
        ids = list(self.rows["episode_id"])
        w = self.rows["sample_weight"].to_numpy(float) * self.rows["kept_frames"].to_numpy(float)
        ok = np.array([bool(self._segments(self.episode(e), T)) for e in ids])
        w = np.where(ok, w, 0.0)
        if w.sum() <= 0:
            raise ValueError(f"no episode in split '{self.split}' of {self.corpus.path} has a kept segment of "
                             f"{T} frames at {self.fps:g} fps (longest: {self.max_clip_frames()}); build longer "
                             "episodes or shorten the clip lengths in the config's train section")
        eid = ids[int(rng.choice(len(ids), p=w / w.sum()))]
        ep = self.episode(eid)
        s = self.stride(ep)
        segs = self._segments(ep, T)
        a, b = segs[int(rng.integers(len(segs)))]
        start = int(rng.integers(a, b - (T - 1) * s))
        idx = start + s * np.arange(T)
        poses_abs = ep.poses()[idx]
        reversed_pivot = None
        if self.time_reverse_prob > 0 and rng.random() < self.time_reverse_prob:
            ridx, actions, gamma = time_reverse(poses_abs, rng)
            reversed_pivot = int(np.argmax(ridx))
            idx = idx[ridx]
        elif s == 1:
            actions, gamma = ep.actions()[idx].astype(np.float32), ep.gamma
        else:
            actions, gamma = poses_to_actions(poses_abs)
        pause_start = None
        if self.pause_prob > 0 and rng.random() < self.pause_prob:   # no draw at all when off
            pidx, actions, gamma = pause(ep.poses()[idx], rng)
            pause_start = int(pidx[-1])
            idx = idx[pidx]
        frames = np.stack([self._resize(ep.rgb(int(i))) for i in idx])
        poses = actions_to_poses(actions, gamma, None)
        text = ""
        for cap in ep.captions:
            if cap["start_frame"] <= idx[0] < cap["end_frame"]:
                text = cap["text"]
                break
        return Clip(frames, np.asarray(actions, np.float32), float(gamma), poses, text,
                    {"episode_id": eid, "start": start, "stride": s, "time_reverse_pivot": reversed_pivot,
                     "pause_start": pause_start})

    def _resize(self, img: np.ndarray) -> np.ndarray:
        if img.shape[:2] == (self.H, self.W):
            return img
        return cv2.resize(img, (self.W, self.H), interpolation=cv2.INTER_AREA)
