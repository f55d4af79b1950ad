"""``matrix-game-2[:WEIGHTS]``: Matrix-Game-2.0, universal variant (W/S/A/D keys + mouse pitch/yaw),
through fastvideo (``FastVideo/Matrix-Game-2.0-Base-Distilled-Diffusers``, 352x640 at 25 fps).

Control mapping (our 13-dim actions -> its conditions; fastvideo ``models/dits/matrixgame2/utils.py``):

- ``keyboard_cond`` (T, 4) = [W, S, A, D], 0/1 per model frame. Keys are binary and the model's
  walking speed is its own (learned from its games; the code has no speed input), so a key is
  pressed when the commanded motion along it is at least ``KEY_THRESHOLD`` (0.25) of the task's gamma,
  exactly as in the task pack's keyboard_mouse.csv. The commanded SPEED is not expressible:
  ``rpe_trans_rel`` measures the model's own speed against ours.
- ``mouse_cond`` (T, 2) = [pitch, yaw] per model frame, + = look up / turn right (its ``CAMERA_MAP``:
  "i" up = [+0.1, 0], "l" right = [0, +0.1]). The code gives the mouse no angle unit; the adapter maps
  degrees per model frame linearly with ``DEG_PER_MOUSE_UNIT`` (24 deg per unit, so its preset 0.1 is
  our controller's default turn rate, 60 deg/s = 2.4 deg per frame at 25 fps). This constant is an
  ASSUMPTION until measured on a GPU (run pan-only tasks, compare ``rpe_rot_rel``); override with
  ``RELIC_MG2_DEG_PER_MOUSE_UNIT``.
- Row j (j >= 1) holds the control of the motion from model frame j-1 to j (resampled in time by
  :mod:`benchmark.adapters.fastvideo_bridge`); row 0 repeats row 1, as fastvideo's
  ``create_action_presets`` does for the first frame.
- No pedestal (lift) and no roll: tasks commanding them are n/a with the reason.
"""
from __future__ import annotations

import os

import numpy as np

from benchmark.adapters import fastvideo_bridge as fb
from datagen import actions as act

KEY_THRESHOLD = 0.25
DEG_PER_MOUSE_UNIT = 24.0
MODEL_FPS = 25.0
MODEL_SIZE = (640, 352)
REPO_ID = "FastVideo/Matrix-Game-2.0-Base-Distilled-Diffusers"
WEIGHTS_ENV = "RELIC_MATRIX_GAME2_WEIGHTS"


def deg_per_mouse_unit() -> float:
    v = os.environ.get("RELIC_MG2_DEG_PER_MOUSE_UNIT")
    return float(v) if v else DEG_PER_MOUSE_UNIT


def to_matrix_game(actions: np.ndarray, fps: float, model_fps: float = MODEL_FPS,
                   deg_per_unit: float | None = None) -> dict[str, np.ndarray]:
    """Our (n, 13) steps at ``fps`` -> {"num_frames": T, "keyboard": (T, 4), "mouse": (T, 2)} at model_fps."""
    a = np.asarray(actions, dtype=np.float64)
    n = len(a)
    dpu = deg_per_mouse_unit() if deg_per_unit is None else float(deg_per_unit)
    T = fb.model_num_frames(n, fps, model_fps)
    src = fb.model_step_index(T - 1, fps, model_fps, n)
    t, ang = act.actions_to_deltas(a)  # t: (right, down, forward) in gamma units; ang: (pitch, yaw, roll) deg/frame
    kb = np.zeros((T, 4), np.float32)
    ms = np.zeros((T, 2), np.float32)
    if n:
        tt, aa = t[src], ang[src]
        kb[1:, 0] = tt[:, 2] >= KEY_THRESHOLD    # W
        kb[1:, 1] = -tt[:, 2] >= KEY_THRESHOLD   # S
        kb[1:, 2] = -tt[:, 0] >= KEY_THRESHOLD   # A
        kb[1:, 3] = tt[:, 0] >= KEY_THRESHOLD    # D
        scale = fps / model_fps / dpu            # deg per our frame -> deg per model frame -> mouse units
        ms[1:, 0] = aa[:, 0] * scale
        ms[1:, 1] = aa[:, 1] * scale
        kb[0], ms[0] = kb[1], ms[1]
    return {"num_frames": np.int64(T), "keyboard": kb, "mouse": ms}


class MatrixGame2Model(fb.FastVideoModel):
    name = "matrix-game-2"
    kind = "matrix-game-2"
    repo_id = REPO_ID
    env_var = WEIGHTS_ENV
    model_fps = MODEL_FPS
    model_size = MODEL_SIZE
    supported = ("dolly", "truck", "tilt", "pan")

    def controls(self, actions, gamma, fps, K):
        return to_matrix_game(actions, fps, self.model_fps)


def check(arg: str | None) -> None:
    fb.check_runnable(MatrixGame2Model.name, REPO_ID, WEIGHTS_ENV, arg)
