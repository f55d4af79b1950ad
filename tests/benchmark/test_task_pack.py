"""`relic bench export`: the task pack holds exactly what a model is told, in every control form, and
a lab that runs the bundled RELIC from the pack ALONE gets the numbers `relic bench run` gets."""
import json

import cv2
import numpy as np
import pandas as pd
import pytest

import relic_cli
from benchmark.tasks import export as ex
from benchmark.tasks.io import load_suite
from datagen import actions as act


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pack") / "suite"
    assert relic_cli.main(["bench", "tasks", "--out", str(d), "--suite", "mini", "--quiet"]) == 0
    return d


@pytest.fixture(scope="module")
def pack_dir(suite_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("pack") / "pack"
    assert relic_cli.main(["bench", "export", "--tasks", str(suite_dir), "--out", str(d), "--quiet"]) == 0
    return d


def test_pack_layout_checksums_and_no_ground_truth(suite_dir, pack_dir):
    suite = load_suite(suite_dir)
    pack = ex.read_pack(pack_dir)
    assert pack["suite_content_sha256"] == suite.content_hash
    assert [t["task_id"] for t in pack["tasks"]] == [t.task_id for t in suite.tasks]
    assert ex.verify_pack(pack_dir) == []
    for t in suite.tasks:
        d = pack_dir / "tasks" / t.task_id
        names = {p.name for p in d.iterdir()}
        assert names == {"task.json", "first_frame.png", "actions.npy", "poses_opencv.npy", "poses_opengl.npy",
                         "keyboard_mouse.csv"}  # no frames, no depth, no world poses, no revisits
        inp = ex.load_pack_inputs(d)
        assert np.array_equal(inp["first_frame"], t.first_frame())
        assert inp["prompt"] == t.prompt and inp["gamma"] == t.gamma and inp["fps"] == t.fps
        np.testing.assert_array_equal(inp["K"], t.K)
        assert np.array_equal(inp["actions"], np.asarray(t.actions, np.float32)[: t.num_frames - 1])
    # a changed byte is caught
    f = pack_dir / "tasks" / suite.tasks[0].task_id / "actions.npy"
    orig = f.read_bytes()
    try:
        f.write_bytes(orig[:-1] + bytes([orig[-1] ^ 1]))
        assert ex.verify_pack(pack_dir) == [f"tasks/{suite.tasks[0].task_id}/actions.npy: checksum mismatch"]
    finally:
        f.write_bytes(orig)
    readme = (pack_dir / "README.md").read_text()
    assert "relic bench score --videos" in readme and "poses_opengl" in readme


def test_every_control_form_is_the_same_motion(suite_dir, pack_dir):
    """poses == the ground truth's motion relative to frame 0; OpenGL <-> OpenCV and keyboard/mouse
    -> poses round-trip; keys agree with the labels; `uses` names exactly the commanded groups."""
    for t in load_suite(suite_dir).tasks:
        inp = ex.load_pack_inputs(pack_dir / "tasks" / t.task_id)
        cv_p, gl_p, km = inp["poses_opencv"], inp["poses_opengl"], inp["keyboard_mouse"]
        assert cv_p.shape == (t.num_frames, 4, 4) and km.shape == (t.num_frames - 1, len(ex.KM_COLUMNS))
        gt_rel = np.linalg.inv(t.gt_poses[0]) @ t.gt_poses
        assert np.abs(cv_p[:, :3, 3] - gt_rel[:, :3, 3]).max() < 2e-3  # float32 labels accumulate ~1e-4 m
        assert np.abs(cv_p[:, :3, :3] - gt_rel[:, :3, :3]).max() < 2e-4
        np.testing.assert_allclose(ex.opengl_to_opencv(gl_p), cv_p, atol=1e-12)
        np.testing.assert_allclose(ex.keyboard_mouse_to_poses(km), cv_p, atol=1e-6)
        a = inp["actions"].astype(np.float64)
        tr, ang = act.actions_to_deltas(a)
        np.testing.assert_allclose(km[:, 10], ang[:, 1], atol=1e-4)  # yaw
        np.testing.assert_allclose(km[:, 11], ang[:, 0], atol=1e-4)  # pitch
        np.testing.assert_allclose(km[:, 7], tr[:, 2] * t.gamma, atol=1e-5)  # forward_m
        np.testing.assert_allclose(km[:, 8], tr[:, 0] * t.gamma, atol=1e-5)  # right_m
        clear = np.abs(tr[:, 0] - ex.KEY_THRESHOLD) > 1e-3  # away from the threshold: key state = label
        assert np.array_equal(km[clear, 4] == 1, tr[clear, 0] > ex.KEY_THRESHOLD)  # D
        assert km[:, 4].sum() > 0 or t.family == "revisit_look_away"
        uses = set(json.loads((pack_dir / "tasks" / t.task_id / "task.json").read_text())["uses"])
        expect = {"single_action": {"truck", "tilt"}, "revisit_look_away": {"pan"}, "mixed_action": {"truck", "pan"}}
        assert uses == expect[t.family]


def test_conventions_on_known_motions():
    """A dolly_in step moves the camera along +z (OpenCV) = -z (OpenGL); pan_right gives yaw > 0 and
    a right-turned forward axis; a lift row presses lift_up; channels_used ignores sub-threshold noise."""
    rows = np.stack([act.multi_hot(["W"]), act.multi_hot(["D"]), act.multi_hot(["LookRight"]),
                     act.multi_hot(["LiftUp"]), act.multi_hot([])])
    p = ex.commanded_poses(rows[:4], 0.1, 5)
    np.testing.assert_allclose(p[1, :3, 3], [0, 0, 0.1], atol=1e-12)
    gl = ex.opencv_to_opengl(p)
    np.testing.assert_allclose(gl[1, :3, 3], [0, 0, -0.1], atol=1e-12)
    np.testing.assert_allclose(gl[1, :3, :3] @ [0, 0, -1], [0, 0, -1], atol=1e-12)  # GL camera looks down -z
    km = ex.keyboard_mouse(p, 0.1)
    cols = {c: i for i, c in enumerate(ex.KM_COLUMNS)}
    assert [int(km[0, cols[k]]) for k in ("W", "A", "S", "D")] == [1, 0, 0, 0]
    assert [int(km[1, cols[k]]) for k in ("W", "A", "S", "D")] == [0, 0, 0, 1]
    assert km[2, cols["yaw_deg"]] == pytest.approx(act.DEFAULT_ROT_SPEED_DEG) and km[2, cols["W"]] == 0
    assert km[3, cols["lift_up"]] == 1 and km[3, cols["up_m"]] == pytest.approx(0.1)
    fwd_after_pan = p[3, :3, :3] @ [0, 0, 1]
    assert fwd_after_pan[0] > 0  # turned right (OpenCV x right)
    noise = np.zeros((10, 13), np.float32)
    noise[:, act.ROLL_CW] = 0.01  # below 0.05 deg/frame
    noise[:, act.PEDESTAL_UP] = 0.01  # 0.1 mm at gamma 0.01
    assert ex.channels_used(noise, 0.01) == []
    noise[3, act.ROLL_CW] = 0.2
    assert ex.channels_used(noise, 0.01) == ["roll"]
    with pytest.raises(ValueError, match="unknown pack format"):
        ex.parse_formats("relic,mp4")


def test_schema_validates_the_pack(pack_dir):
    jsonschema = pytest.importorskip("jsonschema")
    sch = json.loads((pack_dir / "schema.json").read_text())
    jsonschema.validate(json.loads((pack_dir / "pack.json").read_text()), sch)
    task_schema = {**sch["$defs"]["task"], "$defs": sch["$defs"]}
    for d in sorted((pack_dir / "tasks").iterdir()):
        tj = json.loads((d / "task.json").read_text())
        jsonschema.validate(tj, task_schema)
        bad = dict(tj)
        del bad["gamma"]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, task_schema)


def test_format_subset_and_refusals(suite_dir, tmp_path, capsys):
    out = tmp_path / "p"
    assert relic_cli.main(["bench", "export", "--tasks", str(suite_dir), "--out", str(out), "--format",
                           "keyboard-mouse", "--quiet"]) == 0
    d = next((out / "tasks").iterdir())
    assert {p.name for p in d.iterdir()} == {"task.json", "first_frame.png", "keyboard_mouse.csv"}
    assert ex.verify_pack(out) == []
    capsys.readouterr()
    assert relic_cli.main(["bench", "export", "--tasks", str(suite_dir), "--suite", "smoke", "--out",
                           str(tmp_path / "q")]) == 1
    assert relic_cli.main(["bench", "export", "--tasks", str(suite_dir), "--out", str(tmp_path / "q"),
                           "--format", "gif"]) == 1
    err = capsys.readouterr().err
    assert "exactly one of --suite" in err and "unknown pack format" in err


def _write_pngs(folder, frames):
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.ascontiguousarray(f[..., ::-1]))


def test_bundled_relic_run_from_the_pack_alone_scores_like_bench_run(suite_dir, pack_dir, tmp_path):
    """An outside lab: reads first_frame.png, prompt, K, gamma and actions.npy from the pack only,
    runs the bundled RELIC, submits PNG folders; `relic bench score` then gives the same headline
    numbers as `relic bench run --models relic` on the suite."""
    from benchmark.adapters.relic import RelicWorldModel

    model = RelicWorldModel()
    vids = tmp_path / "videos"
    pack = ex.read_pack(pack_dir)
    for e in pack["tasks"]:
        inp = ex.load_pack_inputs(pack_dir / "tasks" / e["task_id"])
        model.reset(inp["first_frame"], inp["prompt"], inp["K"])
        frames = [inp["first_frame"][None]]
        a = inp["actions"]
        for s in range(0, len(a), model.chunk_size):
            frames.append(model.step(a[s:s + model.chunk_size], inp["gamma"]))
        video = np.concatenate(frames)
        assert video.shape == (e["num_frames"], inp["height"], inp["width"], 3)
        _write_pngs(vids / e["task_id"], video)
    assert relic_cli.main(["bench", "score", "--videos", str(vids), "--suite", str(suite_dir), "--out",
                           str(tmp_path / "scored"), "--name", "relic-from-pack", "--no-lpips", "--quiet"]) == 0
    assert relic_cli.main(["bench", "run", "--models", "relic", "--tasks", str(suite_dir), "--out",
                           str(tmp_path / "run"), "--no-lpips", "--quiet"]) == 0
    a = pd.read_csv(tmp_path / "scored" / "results.csv")
    b = pd.read_csv(tmp_path / "run" / "results.csv")
    a = a[a.model == "relic-from-pack"].set_index(["task", "metric"])["value"]
    b = b[b.model == "relic"].set_index(["task", "metric"])["value"]
    common = a.index.intersection(b.index)
    assert len(common) > 50
    heads = ["rpe_trans_rel", "rpe_rot_deg", "revisit_psnr_gt", "revisit_consistency_gain", "frames_psnr_gt"]
    assert any(m in set(common.get_level_values(1)) for m in heads)
    pd.testing.assert_series_equal(a.loc[common].sort_index(), b.loc[common].sort_index(), check_names=False)
    # only speed metrics differ (a video folder has no measured speed)
    assert set(b.index.difference(a.index).get_level_values(1)) <= {"fps", "chunk_latency_ms", "chunk_latency_p95_ms"}
