"""matrix-game-2 / gamecraft adapters without GPU or weights: the control mapping (our actions ->
their keyboard/mouse or camera poses), the time resampling, action-space coverage, the one-line
errors naming what is missing, and the subprocess bridge driven end to end by a stand-in fastvideo."""
import os
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import relic_cli
from benchmark.adapters import fastvideo_bridge as fb
from benchmark.adapters import gamecraft as gc
from benchmark.adapters import matrix_game as mg
from benchmark.adapters import validate_spec
from benchmark.tasks.export import commanded_poses
from benchmark.tasks.task import Task
from datagen import actions as act


def _rows(keys, n):
    return np.repeat(act.multi_hot(keys)[None], n, axis=0).astype(np.float32)


def test_resampling_rule():
    # 63 steps at 16 fps = 3.9375 s -> 4k+1 model frames at 25 fps covering it
    T = fb.model_num_frames(63, 16, 25)
    assert T % 4 == 1 and (T - 1) / 25 >= 63 / 16 and (T - 5) / 25 < 63 / 16
    src = fb.model_step_index(T - 1, 16, 25, 63)
    assert src[0] == 0 and src[-1] == 62 and np.all(np.diff(src) >= 0)
    idx = fb.suite_frame_index(64, 16, 25, T)
    assert idx[0] == 0 and idx[16] == 25 and idx[32] == 50  # 1 s and 2 s land on model frames 25, 50
    assert np.all(np.abs(idx / 25 - np.arange(64) / 16) <= 0.5 / 25 + 1e-12)  # nearest in time
    assert fb.model_num_frames(96, 16, 24) == 145  # 6 s at 24 fps


def test_matrix_game_keys_and_mouse():
    a = np.concatenate([_rows(["W"], 16), _rows(["D"], 16), _rows(["LookRight"], 16), _rows(["LookUp"], 16),
                        _rows(["S", "A"], 16)])
    c = mg.to_matrix_game(a, 16.0, deg_per_unit=24.0)
    T, kb, ms = int(c["num_frames"]), c["keyboard"], c["mouse"]
    assert kb.shape == (T, 4) and ms.shape == (T, 2) and T % 4 == 1
    t = np.arange(T) / 25.0  # model frame j shows the result of the step that ends at j
    seg = lambda lo, hi: (t > lo + 0.05) & (t < hi - 0.05)  # noqa: E731
    assert np.all(kb[seg(0, 1)] == [1, 0, 0, 0]) and np.all(ms[seg(0, 1)] == 0)
    assert np.all(kb[seg(1, 2)] == [0, 0, 0, 1])
    assert np.all(kb[seg(2, 3)] == 0) and np.allclose(ms[seg(2, 3)], [0, 0.1])  # 60 deg/s = its preset 0.1
    assert np.allclose(ms[seg(3, 4)], [0.1, 0])   # look up = + pitch (its "i" key)
    assert np.all(kb[seg(4, 5)] == [0, 1, 1, 0])  # S + A
    # total turn is preserved through the 16 -> 25 fps resampling (to one model frame)
    assert abs(ms[1:, 1].sum() * 24.0 - a[:, act.PAN_RIGHT].sum()) <= 0.1 * 24 + 1e-6
    # a slow motion (below the key threshold) presses nothing
    slow = act.multi_hot({"W": 0.2})[None].repeat(8, 0)
    assert mg.to_matrix_game(slow, 16.0)["keyboard"].sum() == 0
    os.environ["RELIC_MG2_DEG_PER_MOUSE_UNIT"] = "12"
    try:
        assert np.isclose(mg.to_matrix_game(_rows(["LookRight"], 8), 16.0)["mouse"][2, 1], 0.2)
    finally:
        del os.environ["RELIC_MG2_DEG_PER_MOUSE_UNIT"]


def test_gamecraft_poses_are_the_commanded_ones():
    rng = np.random.default_rng(0)
    a = np.zeros((47, 13), np.float32)
    a[:, act.DOLLY_IN] = rng.uniform(0.5, 1.5, 47)
    a[:, act.PAN_LEFT] = rng.uniform(0, 3, 47)
    a[:, act.TILT_UP] = rng.uniform(0, 1, 47)
    K = np.array([[640.0, 0, 640], [0, 640, 352], [0, 0, 1]])
    c = gc.to_gamecraft(a, 0.05, 16.0, K)
    T, c2w = int(c["num_frames"]), c["c2w"].astype(np.float64)
    assert c2w.shape == (T, 4, 4) and T % 4 == 1 and (T - 1) / 24 >= 47 / 16
    ours = commanded_poses(a, 0.05, 48)
    for j in range(0, T, 3):  # model frame j (time j/24) = suite frame 2j/3 exactly
        i = 2 * j // 3
        if i > 47:
            break
        np.testing.assert_allclose(c2w[j, :3, 3], ours[i, :3, 3] * gc.TRANSLATION_SCALE, atol=1e-5)
        np.testing.assert_allclose(c2w[j, :3, :3], ours[i, :3, :3], atol=1e-5)
    # its convention: forward = +z, pan left turns the forward axis to -x, tilt up to -y (OpenCV)
    fwd = commanded_poses(_rows(["W"], 4), 0.1, 5)
    assert np.allclose(gc.to_gamecraft(_rows(["W"], 4), 0.1, 16, K)["c2w"][-1, :3, 3], [0, 0, 0.4 * 10], atol=1e-5)
    assert fwd[-1, 2, 3] > 0
    left = gc.to_gamecraft(_rows(["LookLeft"], 8), 0.0, 16, K)["c2w"][-1, :3, :3] @ [0, 0, 1]
    up = gc.to_gamecraft(_rows(["LookUp"], 8), 0.0, 16, K)["c2w"][-1, :3, :3] @ [0, 0, 1]
    assert left[0] < -0.3 and up[1] < -0.3
    np.testing.assert_allclose(c["intrinsics"][0], [640, 640, 640, 352])


def _task(actions, gamma=0.05):
    n = len(actions) + 1
    return Task(task_id="t", family="f", scene_id="s", prompt="p", K=np.eye(3), width=64, height=40, fps=16.0,
                actions=np.vstack([actions, act.multi_hot([])[None]]), gamma=gamma,
                gt_poses=commanded_poses(actions, gamma, n), revisits=pd.DataFrame())


@pytest.mark.parametrize("cls", [mg.MatrixGame2Model, gc.GameCraftModel])
def test_coverage_marks_pedestal_and_roll_na(cls):
    m = object.__new__(cls)  # no construction: that checks env/GPU/weights
    assert m.out_of_action_space(_task(np.vstack([_rows(["W"], 8), _rows(["LookLeft"], 8)]))) is None
    r = m.out_of_action_space(_task(np.vstack([_rows(["W"], 8), _rows(["RollCW"], 4), _rows(["LiftUp"], 4)])))
    assert r is not None and "pedestal/roll" in r and cls.name in r


def test_missing_requirements_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(fb.ENV_VAR, str(tmp_path / "no-env"))
    monkeypatch.delenv(mg.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(RuntimeError) as e:
        validate_spec("matrix-game-2")
    msg = str(e.value)
    assert "\n" not in msg and "baselines env" in msg and "pip install fastvideo==0.2.1" in msg
    assert "Matrix-Game-2.0-Base-Distilled-Diffusers" in msg
    # a baselines env whose python has torch but no fastvideo, and weights present: only those two named
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    w = tmp_path / "w"
    w.mkdir()
    (w / "model_index.json").write_text("{}")
    monkeypatch.setenv(fb.ENV_VAR, str(env))
    missing = fb.missing_requirements("gamecraft", gc.REPO_ID, gc.WEIGHTS_ENV, str(w))
    assert len(missing) == 2 and "fastvideo" in missing[0] and "CUDA GPU" in missing[1]
    # through the CLI: exit 1, exactly one line, no traceback
    monkeypatch.setenv(fb.ENV_VAR, str(tmp_path / "no-env"))
    capsys.readouterr()
    assert relic_cli.main(["bench", "run", "--models", "gamecraft", "--suite", "smoke", "--out",
                           str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("relic: error: model gamecraft cannot run here: missing")
    assert not (tmp_path / "o" / "results.csv").exists()


FAKE_FASTVIDEO = '''
import numpy as np
class VideoGenerator:
    @classmethod
    def from_pretrained(cls, path, **kw):
        import json, os
        assert os.path.exists(os.path.join(path, "model_index.json"))
        return cls()
    def generate_video(self, prompt=None, num_frames=0, height=0, width=0, **kw):
        from PIL import Image
        img = np.asarray(Image.open(kw["image_path"]).convert("RGB"))
        assert img.shape == (height, width, 3)
        if "keyboard_cond" in kw:
            assert tuple(kw["keyboard_cond"].shape) == (1, num_frames, 4) and tuple(kw["mouse_cond"].shape) == (1, num_frames, 2)
        else:
            assert tuple(kw["camera_states"].shape) == (1, num_frames, 6, height, width)
        # frame j encodes its index in the red channel so the test can read the resampling back
        frames = [np.full((height, width, 3), (j, 0, 0), np.uint8) for j in range(num_frames)]
        return {"frames": frames}
'''
FAKE_TRAJ = '''
import torch
def _ray_condition(K, c2w, H, W, device="cpu", flip_flag=None):
    return torch.zeros(1, c2w.shape[1], H, W, 6)
'''


@pytest.mark.parametrize("spec", ["matrix-game-2", "gamecraft"])
def test_bridge_end_to_end_with_a_stand_in_fastvideo(spec, tmp_path, monkeypatch):
    """The real adapter path (worker subprocess, request files, resampling back to the suite's rate and
    size) with a stand-in fastvideo package whose frames carry their model-frame index."""
    fake = tmp_path / "fake"
    (fake / "fastvideo" / "models" / "camera").mkdir(parents=True)
    (fake / "fastvideo" / "__init__.py").write_text(textwrap.dedent(FAKE_FASTVIDEO))
    (fake / "fastvideo" / "models" / "__init__.py").write_text("")
    (fake / "fastvideo" / "models" / "camera" / "__init__.py").write_text("")
    (fake / "fastvideo" / "models" / "camera" / "trajectory.py").write_text(textwrap.dedent(FAKE_TRAJ))
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    py = env / "bin" / "python"
    py.write_text(f"#!/bin/sh\nPYTHONPATH={fake} exec {sys.executable} \"$@\"\n")
    py.chmod(0o755)
    w = tmp_path / "w"
    w.mkdir()
    (w / "model_index.json").write_text("{}")
    monkeypatch.setenv(fb.ENV_VAR, str(env))
    real_probe = fb.probe_env
    info = real_probe(py)
    assert "fastvideo" in info  # the stand-in is what the env imports
    monkeypatch.setattr(fb, "probe_env", lambda p, timeout=180.0: {**info, "cuda": True, "gpus": 1})
    from benchmark.adapters import make_model

    m = make_model(f"{spec}:{w}")
    try:
        task = _task(np.vstack([_rows(["W"], 20), _rows(["LookRight"], 27)]))
        m.bind_task(task)
        first = np.zeros((40, 64, 3), np.uint8)
        m.reset(first, "a room", np.array([[32.0, 0, 32], [0, 32, 20], [0, 0, 1]]))
        frames = m.step(np.asarray(task.actions[:47]), task.gamma)
        assert frames.shape == (47, 40, 64, 3) and frames.dtype == np.uint8
        idx = fb.suite_frame_index(48, 16.0, m.model_fps, int(fb.model_num_frames(47, 16.0, m.model_fps)))
        assert np.array_equal(frames[:, 0, 0, 0], idx[1:])  # suite frame i shows model frame round(i*Fm/F)
    finally:
        m.close()
