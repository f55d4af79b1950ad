"""The teacher-vs-student action-following probe on a real (mini) suite."""
import numpy as np
import pytest
import torch

from benchmark.probes.action_following import MODELS, direction_cosine, main, probe, summary


def _yaw_poses(n, step_m, axis=2):
    p = np.repeat(np.eye(4)[None], n, 0)
    p[:, axis, 3] = step_m * np.arange(n)
    return p


def test_direction_cosine_separates_following_from_opposite_and_unrelated():
    ref = _yaw_poses(40, 0.05)                                  # 0.8 m per 16 frames forward
    assert direction_cosine(ref, ref, 16) == pytest.approx(1.0)
    assert direction_cosine(ref, _yaw_poses(40, -0.01), 16) == pytest.approx(-1.0)  # scale-free
    assert direction_cosine(ref, _yaw_poses(40, 0.05, axis=0), 16) == pytest.approx(0.0)
    assert np.isnan(direction_cosine(ref, np.repeat(np.eye(4)[None], 40, 0), 16))  # no translation shown
    assert np.isnan(direction_cosine(_yaw_poses(40, 0.001), ref, 16))              # nothing commanded


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    from safetensors.torch import save_file

    from benchmark.tasks.suite import build_suite, suite_spec
    from relic_model.inference.checkpoint import BUNDLED, load_checkpoint
    from relic_model.train.common import build_dit
    root = tmp_path_factory.mktemp("mini_suite_af")
    build_suite(root, suite_spec("mini"), progress=False)
    cfg, _, _, text = load_checkpoint(BUNDLED, "cpu")
    torch.manual_seed(0)
    teacher = build_dit(cfg)
    w = tmp_path_factory.mktemp("teacher") / "model.safetensors"
    tensors = {f"teacher.{k}": v.contiguous() for k, v in teacher.state_dict().items()}
    tensors.update({f"text.{k}": v.contiguous() for k, v in text.state_dict().items()})
    save_file(tensors, str(w))
    return root, w


def test_probe_scores_every_model_and_the_oracle_best(mini, tmp_path):
    root, w = mini
    df = probe(root, w, n_tasks=2, frames=17, steps=2, progress=False)
    assert df["task"].nunique() == 2 and set(df["model"]) == set(MODELS)
    assert np.isfinite(df["rpe_trans"]).all() and np.isfinite(df["rpe_rot_deg"]).all()
    s = summary(df)
    assert s.loc["oracle", "rpe_rot_deg"] < s.loc["static", "rpe_rot_deg"]
    out = tmp_path / "diag.md"
    assert main(["--suite", str(root), "--teacher", str(w), "--tasks", "1", "--frames", "9", "--steps", "1",
                 "--out", str(out)]) == 0
    text = out.read_text()
    assert "| teacher |" in text and "| oracle (ref) |" in text and out.with_suffix(".csv").exists()


def test_probe_rejects_a_non_teacher_file_and_bad_lengths(mini, tmp_path):
    from safetensors.torch import save_file
    root, w = mini
    bad = tmp_path / "student.safetensors"
    save_file({"dit.x": torch.zeros(1)}, str(bad))
    with pytest.raises(ValueError, match="no 'teacher.' tensors"):
        probe(root, bad, n_tasks=1, frames=9, progress=False)
    with pytest.raises(ValueError, match="frames must be 1 \\+ 4 k"):
        probe(root, w, n_tasks=1, frames=10, progress=False)
