"""Task pack: a suite's model INPUTS in a fixed, documented layout any lab can run (no ground truth).

``export_pack(suite, out, formats)`` writes (format ``relic-task-pack``, version 1)::

    PACK/
      pack.json                 format, version, suite name and content hash, formats, conventions,
                                the task list (id, family, frames, fps, uses)
      schema.json               JSON schema of pack.json and of every tasks/<id>/task.json
      README.md                 the conventions below, how to submit videos, how they are scored
      SHA256SUMS                "<sha256>  <relative path>" of every other file (sha256sum -c format)
      tasks/<task_id>/
        task.json               prompt, width, height, fps, num_frames, gamma, K, fov, channels used
        first_frame.png         frame 0 (the model's input; never generated)
        actions.npy             [relic]  (N-1, 13) float32 RELIC labels, datagen.actions channel order;
                                         row i moves frame i -> i+1
        poses_opencv.npy        [poses]  (N, 4, 4) float64 camera-to-world, OpenCV axes (x right,
                                         y down, z forward), metres, frame 0 = identity
        poses_opengl.npy        [poses]  the same poses with camera AND world in OpenGL axes (x right,
                                         y up, z backward): F @ c2w_opencv @ F, F = diag(1, -1, -1, 1)
        keyboard_mouse.csv      [keyboard-mouse] one row per step i (frame i -> i+1): W, A, S, D,
                                         lift_up, lift_down key states (0/1), the continuous motion
                                         forward_m, right_m, up_m (metres, camera i's frame) and the mouse
                                         deltas yaw_deg (+ = turn right), pitch_deg (+ = look up),
                                         roll_deg (+ = clockwise seen from behind)

Every control form is the SAME commanded motion: the poses are the labels integrated with
:func:`datagen.actions.actions_to_poses` from the identity (the exact commands, not the ground-truth
poses' world placement), and the keyboard/mouse rows are :func:`datagen.actions.pose_deltas` of those
poses. A key is pressed when its motion component is at least ``KEY_THRESHOLD`` (0.25) of the
task's ``gamma`` (metres per frame of a unit translation label). ``uses`` in task.json lists the
channel groups the task commands beyond the static thresholds of :mod:`datagen.actions` (2 mm and
0.05 deg per frame): a model without e.g. roll or lift controls declares those tasks n/a.

``relic bench score --videos DIR --suite SUITE`` scores what comes back: ``DIR/<task_id>.mp4`` (or a
folder of PNGs), N frames with frame 0 or N-1 without, and ``DIR/not_applicable.json`` for tasks
outside a model's action space. The pack has no ground truth, so scoring needs the suite itself.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np

from benchmark.tasks.io import _png_bytes, read_png_rgb
from datagen import actions as act
from datagen.atomic import atomic_write_bytes, atomic_write_text
from datagen.filebytes import sha256_file

PACK_FORMAT = "relic-task-pack"
PACK_VERSION = 1
FORMATS = ("relic", "keyboard-mouse", "poses")
KEY_THRESHOLD = 0.25
CHECKSUM_FILE = "SHA256SUMS"
KM_COLUMNS = ("step", "W", "A", "S", "D", "lift_up", "lift_down", "forward_m", "right_m", "up_m",
              "yaw_deg", "pitch_deg", "roll_deg")
#: OpenCV <-> OpenGL axes (flip y and z); its own inverse.
CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])
#: channel groups reported in task.json "uses"
CHANNEL_GROUPS = {
    "dolly": (act.DOLLY_IN, act.DOLLY_OUT), "truck": (act.TRUCK_LEFT, act.TRUCK_RIGHT),
    "pedestal": (act.PEDESTAL_UP, act.PEDESTAL_DOWN), "tilt": (act.TILT_UP, act.TILT_DOWN),
    "pan": (act.PAN_LEFT, act.PAN_RIGHT), "roll": (act.ROLL_CW, act.ROLL_CCW),
}


def parse_formats(text: str) -> tuple[str, ...]:
    """``relic``, ``keyboard-mouse``, ``poses``, comma-separated, or ``all``."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if parts == ["all"] or not parts:
        return FORMATS
    bad = [p for p in parts if p not in FORMATS]
    if bad:
        raise ValueError(f"unknown pack format(s) {bad}; known: {', '.join(FORMATS)} or all")
    return tuple(f for f in FORMATS if f in parts)


def step_actions(task) -> np.ndarray:
    """The N-1 commanded rows (row i moves frame i -> i+1), float32."""
    return np.asarray(task.actions, dtype=np.float32)[: task.num_frames - 1]


def commanded_poses(actions: np.ndarray, gamma: float, num_frames: int) -> np.ndarray:
    """(N, 4, 4) OpenCV camera-to-world poses of the commands, frame 0 = identity."""
    a = np.zeros((num_frames, act.NUM_CHANNELS), dtype=np.float64)
    a[: len(actions)] = actions
    return act.actions_to_poses(a, float(gamma))


def opencv_to_opengl(c2w: np.ndarray) -> np.ndarray:
    """Camera and world axes both from OpenCV (x right, y down, z fwd) to OpenGL (x right, y up, z back)."""
    return CV_TO_GL @ np.asarray(c2w, dtype=np.float64) @ CV_TO_GL


def opengl_to_opencv(c2w_gl: np.ndarray) -> np.ndarray:
    return CV_TO_GL @ np.asarray(c2w_gl, dtype=np.float64) @ CV_TO_GL


def keyboard_mouse(poses_cv: np.ndarray, gamma: float, key_threshold: float = KEY_THRESHOLD) -> np.ndarray:
    """(N-1, 13) float64 rows in ``KM_COLUMNS`` order from the commanded poses."""
    dp, ang = act.pose_deltas(poses_cv)
    n = len(dp)
    thr = key_threshold * gamma if gamma > 0 else math.inf
    fwd, right, up = dp[:, 2], dp[:, 0], -dp[:, 1]
    out = np.zeros((n, len(KM_COLUMNS)))
    out[:, 0] = np.arange(n)
    out[:, 1] = fwd >= thr            # W
    out[:, 2] = -right >= thr         # A
    out[:, 3] = -fwd >= thr           # S
    out[:, 4] = right >= thr          # D
    out[:, 5] = up >= thr             # lift_up
    out[:, 6] = -up >= thr            # lift_down
    out[:, 7], out[:, 8], out[:, 9] = fwd, right, up
    out[:, 10], out[:, 11], out[:, 12] = ang[:, 1], ang[:, 0], ang[:, 2]  # yaw, pitch, roll
    return out


def keyboard_mouse_to_poses(km: np.ndarray) -> np.ndarray:
    """Integrate the continuous columns of :func:`keyboard_mouse` back to OpenCV c2w poses."""
    km = np.asarray(km, dtype=np.float64)
    out = np.empty((len(km) + 1, 4, 4))
    out[0] = np.eye(4)
    for i, r in enumerate(km):
        nxt = np.eye(4)
        rot = out[i, :3, :3]
        nxt[:3, 3] = out[i, :3, 3] + rot @ np.array([r[8], -r[9], r[7]])
        nxt[:3, :3] = rot @ act.local_rotation(r[11], r[10], r[12])
        out[i + 1] = nxt
    return out


def channels_used(actions: np.ndarray, gamma: float) -> list[str]:
    """Channel groups commanded beyond the static thresholds (2 mm / 0.05 deg per frame)."""
    a = np.asarray(actions, dtype=np.float64)
    used = []
    for name, (i, j) in CHANNEL_GROUPS.items():
        v = np.abs(a[:, i] - a[:, j]) if len(a) else np.zeros(0)
        if i in act.TRANSLATION_CHANNELS:
            hit = np.any(v * gamma > act.DEFAULT_STATIC_EPS_M)
        else:
            hit = np.any(v > act.DEFAULT_STATIC_EPS_DEG)
        if hit:
            used.append(name)
    return used


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _json_text(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


def _km_csv(km: np.ndarray) -> str:
    lines = [",".join(KM_COLUMNS)]
    for r in km:
        lines.append(",".join([str(int(r[0]))] + [str(int(v)) for v in r[1:7]] + [f"{v + 0.0:.9g}" for v in r[7:]]))
    return "\n".join(lines) + "\n"


def read_keyboard_mouse(path: Path) -> np.ndarray:
    """keyboard_mouse.csv -> (N-1, 13) float64 in KM_COLUMNS order (checks the header)."""
    text = Path(path).read_text().splitlines()
    if tuple(text[0].split(",")) != KM_COLUMNS:
        raise ValueError(f"{path}: header {text[0]!r}, expected {','.join(KM_COLUMNS)}")
    return np.array([[float(x) for x in ln.split(",")] for ln in text[1:] if ln.strip()]).reshape(-1, len(KM_COLUMNS))


def task_json(task, formats) -> dict:
    K = np.asarray(task.K, dtype=np.float64)
    files = {"first_frame": "first_frame.png"}
    if "relic" in formats:
        files["actions"] = "actions.npy"
    if "poses" in formats:
        files.update({"poses_opencv": "poses_opencv.npy", "poses_opengl": "poses_opengl.npy"})
    if "keyboard-mouse" in formats:
        files["keyboard_mouse"] = "keyboard_mouse.csv"
    return {
        "task_id": task.task_id, "family": task.family, "prompt": task.prompt,
        "width": int(task.width), "height": int(task.height), "fps": float(task.fps),
        "num_frames": int(task.num_frames), "num_steps": int(task.num_frames - 1), "gamma": float(task.gamma),
        "K": K.tolist(), "fx": float(K[0, 0]), "fy": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
        "fov_h_deg": math.degrees(2 * math.atan(task.width / 2 / K[0, 0])),
        "uses": channels_used(step_actions(task), task.gamma), "files": files,
    }


def schema() -> dict:
    num = {"type": "number"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "relic-task-pack v1",
        "$defs": {
            "task": {
                "type": "object",
                "required": ["task_id", "family", "prompt", "width", "height", "fps", "num_frames", "num_steps",
                             "gamma", "K", "fx", "fy", "cx", "cy", "fov_h_deg", "uses", "files"],
                "properties": {
                    "task_id": {"type": "string", "description": "name the generated video <task_id>.mp4"},
                    "family": {"type": "string"}, "prompt": {"type": "string", "description": "static scene text"},
                    "width": {"type": "integer", "minimum": 1}, "height": {"type": "integer", "minimum": 1},
                    "fps": {"type": "number", "exclusiveMinimum": 0, "description": "frames per second the video is scored at"},
                    "num_frames": {"type": "integer", "minimum": 2, "description": "N, frame 0 included"},
                    "num_steps": {"type": "integer", "description": "N-1 control rows"},
                    "gamma": {"type": "number", "minimum": 0, "description": "metres per frame of a unit translation label"},
                    "K": {"type": "array", "items": {"type": "array", "items": num, "minItems": 3, "maxItems": 3},
                          "minItems": 3, "maxItems": 3, "description": "3x3 pinhole intrinsics in pixels, pixel centres at +0.5"},
                    "fx": num, "fy": num, "cx": num, "cy": num, "fov_h_deg": num,
                    "uses": {"type": "array", "items": {"enum": list(CHANNEL_GROUPS)}},
                    "files": {"type": "object", "required": ["first_frame"],
                              "additionalProperties": {"type": "string"}},
                },
            },
        },
        "type": "object",
        "required": ["format", "version", "suite", "suite_content_sha256", "formats", "tasks", "conventions"],
        "properties": {
            "format": {"const": PACK_FORMAT}, "version": {"const": PACK_VERSION},
            "suite": {"type": "string"}, "suite_content_sha256": {"type": "string"},
            "formats": {"type": "array", "items": {"enum": list(FORMATS)}},
            "conventions": {"type": "object"},
            "tasks": {"type": "array", "items": {"type": "object", "required": ["task_id", "num_frames", "fps", "uses"]}},
        },
    }


CONVENTIONS = {
    "frames": "frame 0 is first_frame.png (given); a video holds frames 0..N-1 (or 1..N-1)",
    "controls": "row i of every control file moves frame i to frame i+1 (N-1 rows)",
    "actions": "datagen.actions: 13 channels " + ", ".join(act.CHANNELS) +
               "; translation in units of gamma (metres/frame), rotation in degrees/frame",
    "poses_opencv": "camera-to-world 4x4, metres, camera axes x right / y down / z forward, frame 0 = identity",
    "poses_opengl": "F @ poses_opencv @ F with F = diag(1,-1,-1,1): camera and world axes x right / y up / z backward",
    "keyboard_mouse": "W/A/S/D/lift keys pressed when the motion component >= %.2f * gamma; forward_m, right_m, "
                      "up_m metres in camera i's frame; yaw_deg + = turn right, pitch_deg + = look up, "
                      "roll_deg + = clockwise seen from behind (degrees per frame)" % KEY_THRESHOLD,
}


def _readme(suite_name: str, n_tasks: int, formats) -> str:
    return f"""# relic-suite task pack: suite `{suite_name}` ({n_tasks} tasks)

Inputs only (no ground truth). For each `tasks/<task_id>/`: `first_frame.png`, the static `prompt`,
intrinsics (`K`, `fx`, `fy`, `cx`, `cy`, `fov_h_deg`), `fps`, `gamma` and the per-step controls in
the forms {", ".join(formats)} (`task.json` lists the files; `schema.json` describes the JSON).
`sha256sum -c SHA256SUMS` checks every file.

Conventions (also in `pack.json`):

""" + "".join(f"- **{k}**: {v}\n" for k, v in CONVENTIONS.items()) + """
`uses` lists the motion groups a task commands (dolly, truck, pedestal, tilt, pan, roll). A model
that has no control for one of them declares the task in `not_applicable.json` instead of a video.

## Submitting

Generate one video per task at the task's `fps`, `num_frames` frames (frame 0 included) or
`num_frames - 1` (without), any resolution (resized with area interpolation to `width` x
`height` for scoring), and name it `<task_id>.mp4` (or a folder `<task_id>/` of PNG frames). Put
them in one folder with an optional `not_applicable.json` (`{"<task_id>": "<reason>"}`), then:

    relic bench score --videos VIDEOS --suite SUITE_DIR --out RUN_DIR

where SUITE_DIR is the suite this pack was exported from (`relic bench tasks --suite NAME`;
`pack.json` has its content hash so you can check you score against the same tasks).
"""


def export_pack(suite, out: Path, formats=FORMATS) -> dict:
    """Write the task pack of ``suite`` (a loaded :class:`benchmark.tasks.io.Suite`) into ``out``."""
    out = Path(out)
    formats = tuple(f for f in FORMATS if f in formats)
    if not formats:
        raise ValueError("no pack format chosen")
    written: list[Path] = []

    def put(rel: str, data: bytes) -> None:
        atomic_write_bytes(out / rel, data)
        written.append(Path(rel))

    entries = []
    for task in suite.tasks:
        d = f"tasks/{task.task_id}"
        a = step_actions(task)
        first = task.first_frame()
        put(f"{d}/first_frame.png", _png_bytes(first))
        if "relic" in formats:
            put(f"{d}/actions.npy", _npy(a))
        poses = commanded_poses(a, task.gamma, task.num_frames)
        if "poses" in formats:
            put(f"{d}/poses_opencv.npy", _npy(poses))
            put(f"{d}/poses_opengl.npy", _npy(opencv_to_opengl(poses)))
        if "keyboard-mouse" in formats:
            put(f"{d}/keyboard_mouse.csv", _km_csv(keyboard_mouse(poses, task.gamma)).encode())
        tj = task_json(task, formats)
        put(f"{d}/task.json", _json_text(tj).encode())
        entries.append({"task_id": task.task_id, "family": task.family, "num_frames": tj["num_frames"],
                        "fps": tj["fps"], "uses": tj["uses"]})
        task.release()
    pack = {"format": PACK_FORMAT, "version": PACK_VERSION, "suite": suite.name,
            "suite_content_sha256": suite.content_hash, "formats": list(formats),
            "conventions": CONVENTIONS, "key_threshold": KEY_THRESHOLD, "tasks": entries}
    put("schema.json", _json_text(schema()).encode())
    put("README.md", _readme(suite.name, len(entries), formats).encode())
    put("pack.json", _json_text(pack).encode())
    sums = "".join(f"{sha256_file(out / p)}  {p.as_posix()}\n" for p in sorted(written))
    atomic_write_text(out / CHECKSUM_FILE, sums)
    return pack


def verify_pack(pack_dir: Path) -> list[str]:
    """Problems with a pack's files against SHA256SUMS ([] when every file matches)."""
    pack_dir = Path(pack_dir)
    p = pack_dir / CHECKSUM_FILE
    if not p.exists():
        return [f"{p} not found"]
    bad = []
    for ln in p.read_text().splitlines():
        digest, _, rel = ln.partition("  ")
        f = pack_dir / rel
        if not f.exists():
            bad.append(f"{rel}: missing")
        elif sha256_file(f) != digest:
            bad.append(f"{rel}: checksum mismatch")
    return bad


def read_pack(pack_dir: Path) -> dict:
    """pack.json, checking format and version."""
    p = Path(pack_dir) / "pack.json"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: export one with `relic bench export`")
    m = json.loads(p.read_text())
    if m.get("format") != PACK_FORMAT or m.get("version") != PACK_VERSION:
        raise ValueError(f"{p}: not a {PACK_FORMAT} v{PACK_VERSION} ({m.get('format')!r} v{m.get('version')!r})")
    return m


def load_pack_inputs(task_dir: Path) -> dict:
    """What an outside lab reads for one task: first_frame (H,W,3) uint8, prompt, K, fps, gamma,
    num_frames and every control file present (actions, poses_opencv, poses_opengl, keyboard_mouse)."""
    task_dir = Path(task_dir)
    tj = json.loads((task_dir / "task.json").read_text())
    out = {"task_id": tj["task_id"], "prompt": tj["prompt"], "K": np.asarray(tj["K"], dtype=np.float64),
           "fps": float(tj["fps"]), "gamma": float(tj["gamma"]), "num_frames": int(tj["num_frames"]),
           "width": int(tj["width"]), "height": int(tj["height"]), "uses": list(tj["uses"]),
           "first_frame": read_png_rgb(task_dir / tj["files"]["first_frame"])}
    for key in ("actions", "poses_opencv", "poses_opengl"):
        if key in tj["files"]:
            out[key] = np.load(task_dir / tj["files"][key])
    if "keyboard_mouse" in tj["files"]:
        out["keyboard_mouse"] = read_keyboard_mouse(task_dir / tj["files"]["keyboard_mouse"])
    return out


__all__ = ["export_pack", "verify_pack", "read_pack", "load_pack_inputs", "parse_formats", "keyboard_mouse",
           "keyboard_mouse_to_poses", "commanded_poses", "opencv_to_opengl", "opengl_to_opencv", "channels_used",
           "FORMATS", "PACK_FORMAT", "PACK_VERSION", "KM_COLUMNS", "KEY_THRESHOLD"]
