"""``video-folder:DIR``: frames generated elsewhere (any lab's model), one video per task.

For task ``T`` the folder holds either ``DIR/T.mp4`` (any container OpenCV's FFmpeg reads, also
``.avi``/``.mkv``/``.webm``) or ``DIR/T/`` with image frames (``.png``/``.jpg``, sorted by name).
The video may contain N frames (frame 0 included; it is dropped, the given first frame is used) or
N - 1 frames (frames 1..N-1). Frames at a different resolution are resized to the task's with
area interpolation. Generation speed is unknown for these, so the harness reports no ``fps``.

A model that cannot be driven by some tasks' actions (e.g. it has no roll or lift control) declares
them in ``DIR/not_applicable.json``: ``{"<task_id>": "<reason>", ...}``. Those tasks need no
video; they are reported n/a with the reason, not missing. Every other task needs its video: a
missing, unreadable or wrongly sized one fails that task with a one-line reason.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from benchmark.world_model import WorldModel, as_actions

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".webm", ".mov")
IMAGE_EXTS = (".png", ".jpg", ".jpeg")


def read_video(path: Path) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames of a video file (OpenCV/FFmpeg)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise RuntimeError(f"cannot open video {path} (OpenCV/FFmpeg)")
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr[..., ::-1])
    cap.release()
    if not frames:
        raise RuntimeError(f"video {path} has no readable frames")
    return np.ascontiguousarray(np.stack(frames))


def read_image_folder(path: Path) -> np.ndarray:
    files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise RuntimeError(f"{path} has no {IMAGE_EXTS} frames")
    from PIL import Image, UnidentifiedImageError

    out = []
    for p in files:
        try:  # PIL: a corrupt or truncated file raises (OpenCV would also log to stderr)
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB")))
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise RuntimeError(f"cannot read frame {p} ({type(e).__name__}: {e})") from None
    shapes = {f.shape for f in out}
    if len(shapes) != 1:
        raise RuntimeError(f"{path}: frames have different sizes {sorted(shapes)}")
    return np.ascontiguousarray(np.stack(out))


NOT_APPLICABLE_FILE = "not_applicable.json"


def declared_not_applicable(folder: Path) -> dict[str, str]:
    """``DIR/not_applicable.json`` as {task_id: reason} ({} when absent); ValueError when malformed."""
    p = Path(folder) / NOT_APPLICABLE_FILE
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                             for k, v in data.items()):
        raise ValueError(f"{p}: expected an object {{\"<task_id>\": \"<reason>\"}} with a non-empty reason per task")
    return dict(data)


def find_video(folder: Path, task_id: str) -> Path | None:
    folder = Path(folder)
    for ext in VIDEO_EXTS:
        if (folder / f"{task_id}{ext}").exists():
            return folder / f"{task_id}{ext}"
    if (folder / task_id).is_dir():
        return folder / task_id
    return None


def load_generated(folder: Path, task) -> np.ndarray:
    """Frames 1..N-1 (N-1, H, W, 3) uint8 for ``task`` from ``folder`` (see module doc)."""
    p = find_video(folder, task.task_id)
    if p is None:
        raise FileNotFoundError(f"no video for task {task.task_id} in {folder} "
                                f"(expected {task.task_id}.mp4 or a folder {task.task_id}/ of PNG frames)")
    frames = read_image_folder(p) if p.is_dir() else read_video(p)
    n = task.num_frames
    if len(frames) == n:
        frames = frames[1:]
    elif len(frames) != n - 1:
        raise ValueError(f"{p}: {len(frames)} frames, task {task.task_id} needs {n} (incl. frame 0) or {n - 1}")
    if frames.shape[1:3] != (task.height, task.width):
        frames = np.stack([cv2.resize(f, (task.width, task.height), interpolation=cv2.INTER_AREA) for f in frames])
    return frames.astype(np.uint8)


class VideoFolderModel(WorldModel):
    chunk_size = 16
    measures_speed = False

    def __init__(self, folder: str | Path, name: str | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"video folder {self.folder} does not exist")
        self.name = name or f"videos:{self.folder.name}"
        self._frames = None
        self.not_applicable = declared_not_applicable(self.folder)

    def out_of_action_space(self, task) -> str | None:
        return self.not_applicable.get(task.task_id)

    def bind_task(self, task) -> None:
        self._frames = load_generated(self.folder, task)

    def reset(self, first_frame: np.ndarray, prompt: str, K: np.ndarray) -> None:
        if self._frames is None:
            raise RuntimeError("video-folder: bind_task(task) must be called before reset()")
        self._t = 0

    def step(self, actions: np.ndarray, gamma: float) -> np.ndarray:
        k = as_actions(actions).shape[0]
        out = self._frames[self._t:self._t + k]
        if len(out) != k:
            raise RuntimeError(f"{self.name}: ran out of frames")
        self._t += k
        return out.copy()
