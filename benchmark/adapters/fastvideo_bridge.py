"""Drive a model of the ``fastvideo`` package (PyPI, FastVideo 0.2.1) from the benchmark harness.

fastvideo pins its own torch (2.12.0) and other versions that conflict with ours (torch 2.14.1), so it
never enters our environment: it lives in its own virtualenv (the *baselines env*) and the adapter
talks to a worker process running there (``benchmark/adapters/fastvideo_worker.py``, which imports
only the standard library, numpy, PIL, torch and fastvideo). One worker per model serves every task:
per task the adapter writes the first frame and the model's controls (already converted, see each
adapter) to a temporary folder, sends one JSON line, and reads the generated frames back.

Time and space resampling (the same for every fastvideo model):

- the model generates ``T = 4k+1`` frames at its native rate ``F_m`` covering the task's duration
  ``(N-1)/F`` (``F`` = the suite's fps), ``k`` the smallest with ``(T-1)/F_m >= (N-1)/F``;
- model frame j is at time j/F_m; its control comes from our step ``floor(j F / F_m)`` (motion per
  frame scaled by ``F / F_m``, so the commanded motion per SECOND is the task's);
- suite frame i (time i/F) is the model frame nearest in time, ``round(i F_m / F)`` (no blending: a
  blend would invent motion blur); frames are resized to the task's size with area interpolation
  (the first frame to the model's native size the same way, its aspect ratio not preserved: the
  resize back undoes the stretch).

Requirements are checked before anything runs (:func:`missing_requirements`); each one missing is
named with the command that fixes it, in one line.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from benchmark.tasks.export import channels_used, step_actions
from benchmark.world_model import WorldModel, as_actions

FASTVIDEO_VERSION = "0.2.1"
ENV_VAR = "RELIC_BASELINES_ENV"
DEFAULT_ENV = Path("~/.cache/relic-suite/baselines-env")
WORKER = Path(__file__).with_name("fastvideo_worker.py")


def baselines_env() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_ENV).expanduser()


def env_python(env: Path | None = None) -> Path:
    return (env or baselines_env()) / "bin" / "python"


def setup_command(env: Path | None = None) -> str:
    env = env or baselines_env()
    return f"python3.11 -m venv {env} && {env}/bin/pip install fastvideo=={FASTVIDEO_VERSION}"


def probe_env(python: Path, timeout: float = 180.0) -> dict:
    """Ask the baselines env's python what it has: {fastvideo, torch, cuda, gpus} or {error}."""
    code = ("import json\nout = {}\n"
            "try:\n import torch; out['torch'] = torch.__version__; out['cuda'] = bool(torch.cuda.is_available()); "
            "out['gpus'] = torch.cuda.device_count()\nexcept Exception as e:\n out['torch_error'] = repr(e)\n"
            "try:\n import fastvideo\nexcept Exception as e:\n out['fastvideo_error'] = type(e).__name__ + ': ' + str(e)\n"
            "else:\n from importlib.metadata import version, PackageNotFoundError\n"
            " try:\n  out['fastvideo'] = version('fastvideo')\n"
            " except PackageNotFoundError:\n  out['fastvideo'] = getattr(fastvideo, '__version__', 'unknown')\n"
            "print(json.dumps(out))")
    try:
        r = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"{python} could not run ({type(e).__name__})"}
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"{python} failed: {(r.stderr.strip().splitlines() or ['no output'])[-1]}"}


def hf_cache_snapshot(repo_id: str) -> Path | None:
    """The newest local snapshot of a Hugging Face repo in the HF cache, or None (never downloads)."""
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub")
    snaps = hub.expanduser() / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    if not snaps.is_dir():
        return None
    found = sorted((p for p in snaps.iterdir() if (p / "model_index.json").exists()), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def find_weights(arg: str | None, repo_id: str, env_var: str) -> Path | None:
    """Weights folder: the spec's ``:PATH``, else ``$env_var``, else the HF cache of ``repo_id``."""
    given = arg or os.environ.get(env_var)
    if given:
        p = Path(given).expanduser()
        return p if (p / "model_index.json").exists() else None
    return hf_cache_snapshot(repo_id)


def missing_requirements(name: str, repo_id: str, env_var: str, arg: str | None) -> list[str]:
    """What stops ``name`` from running here (empty when it can run): the baselines env with
    fastvideo, a CUDA GPU visible to it, the weights."""
    missing = []
    py = env_python()
    if not py.exists():
        missing.append(f"the baselines env with fastvideo ({py} not found; create it with `{setup_command()}` "
                       f"or point {ENV_VAR} at one)")
        gpu = shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()
        if not gpu:
            missing.append("a CUDA GPU (no nvidia-smi / /dev/nvidia0)")
    else:
        info = probe_env(py)
        if "error" in info:
            missing.append(f"a working baselines env ({info['error']})")
        else:
            if "fastvideo" not in info:
                missing.append(f"fastvideo in {py} ({info.get('fastvideo_error', '?')}; `{py.parent}/pip install "
                               f"fastvideo=={FASTVIDEO_VERSION}`)")
            if not info.get("cuda"):
                missing.append(f"a CUDA GPU (torch {info.get('torch', '?')} in the baselines env sees none)")
    if find_weights(arg, repo_id, env_var) is None:
        where = f"{arg or os.environ.get(env_var)} has no model_index.json" if (arg or os.environ.get(env_var)) \
            else f"not in the Hugging Face cache and no {name}:PATH / {env_var} given"
        missing.append(f"the weights {repo_id} ({where}; fetch them with `huggingface-cli download {repo_id} "
                       f"--local-dir DIR` and pass --models {name}:DIR)")
    return missing


def check_runnable(name: str, repo_id: str, env_var: str, arg: str | None) -> None:
    missing = missing_requirements(name, repo_id, env_var, arg)
    if missing:
        raise RuntimeError(f"model {name} cannot run here: missing " + "; ".join(missing))


# ----------------------------------------------------------------------------- resampling
def model_num_frames(n_steps: int, fps: float, model_fps: float) -> int:
    """Smallest T = 4k+1 whose (T-1)/model_fps covers n_steps/fps seconds."""
    need = n_steps * model_fps / fps
    k = max(1, math.ceil(need / 4 - 1e-9))
    return 4 * k + 1


def model_step_index(n_model_steps: int, fps: float, model_fps: float, n_steps: int) -> np.ndarray:
    """For model step j (frame j -> j+1), the index of our step it takes its control from."""
    j = np.arange(n_model_steps)
    return np.minimum(np.floor(j * fps / model_fps + 1e-9).astype(int), max(n_steps - 1, 0))


def suite_frame_index(n_frames: int, fps: float, model_fps: float, n_model_frames: int) -> np.ndarray:
    """Model frame shown at suite frame i: nearest in time, round(i * model_fps / fps)."""
    i = np.arange(n_frames)
    return np.minimum(np.floor(i * model_fps / fps + 0.5).astype(int), n_model_frames - 1)


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


class FastVideoModel(WorldModel):
    """Base of the fastvideo adapters: the whole task is generated in one ``step`` call (the models
    condition on the whole control sequence), through the worker in the baselines env."""

    #: large enough that the harness sends all of a task's actions at once
    chunk_size = 1 << 30
    repo_id = ""
    env_var = ""
    kind = ""
    model_fps = 25.0
    model_size = (640, 352)  # (W, H)
    #: channel groups (benchmark.tasks.export.CHANNEL_GROUPS) the model has a control for
    supported = ("dolly", "truck", "tilt", "pan")

    def __init__(self, arg: str | None = None, seed: int = 0) -> None:
        check_runnable(self.name, self.repo_id, self.env_var, arg)
        self.weights = find_weights(arg, self.repo_id, self.env_var)
        self.seed = int(seed)
        self._proc: subprocess.Popen | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix=f"relic-{self.kind}-"))
        self._ctx: dict | None = None
        self.fps = 16.0

    # -------------------------------------------------------------- control conversion (subclasses)
    def controls(self, actions: np.ndarray, gamma: float, fps: float, K: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def out_of_action_space(self, task) -> str | None:
        extra = [g for g in channels_used(step_actions(task), task.gamma) if g not in self.supported]
        if extra:
            return f"{self.name} has no {'/'.join(extra)} control (its controls: {', '.join(self.supported)})"
        return None

    # -------------------------------------------------------------- harness interface
    def bind_task(self, task) -> None:
        self.fps = float(task.fps)  # the suite's rate (public, in the task pack); no ground truth used

    def reset(self, first_frame: np.ndarray, prompt: str, K: np.ndarray) -> None:
        self._ctx = {"first": np.asarray(first_frame, np.uint8), "prompt": str(prompt),
                     "K": np.asarray(K, np.float64)}

    def step(self, actions: np.ndarray, gamma: float) -> np.ndarray:
        if self._ctx is None:
            raise RuntimeError(f"{self.name}: step() before reset()")
        a = as_actions(actions)
        first = self._ctx["first"]
        H, W = first.shape[:2]
        mw, mh = self.model_size
        K = np.diag([mw / W, mh / H, 1.0]) @ self._ctx["K"]
        ctrl = self.controls(a, float(gamma), self.fps, K)
        T = int(ctrl.pop("num_frames"))
        img = self._tmp / "first.png"
        cv2.imwrite(str(img), cv2.resize(first, (mw, mh), interpolation=cv2.INTER_AREA)[..., ::-1])
        np.savez(self._tmp / "controls.npz", **ctrl)
        out = self._tmp / "frames.npy"
        out.unlink(missing_ok=True)
        reply = self._request({"image": str(img), "prompt": self._ctx["prompt"], "controls": str(self._tmp / "controls.npz"),
                               "num_frames": T, "width": mw, "height": mh, "fps": self.model_fps,
                               "seed": self.seed, "out": str(out)})
        if not reply.get("ok"):
            raise RuntimeError(f"{self.name}: generation failed: {reply.get('error', 'no reply')}")
        frames = np.load(out)
        if frames.ndim != 4 or frames.shape[0] < 2:
            raise RuntimeError(f"{self.name}: worker returned frames of shape {frames.shape}")
        idx = suite_frame_index(len(a) + 1, self.fps, self.model_fps, len(frames))
        return resize_frames(frames[idx[1:]], W, H)

    def _request(self, msg: dict) -> dict:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([str(env_python()), str(WORKER), self.kind, str(self.weights)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(msg) + "\n")
        self._proc.stdin.flush()
        for line in self._proc.stdout:  # the worker prints one JSON reply per request (logs go to stderr)
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        return {"ok": False, "error": f"worker exited with status {self._proc.wait()}"}

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.stdin.close()  # type: ignore[union-attr]
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def describe(self) -> dict:
        d = super().describe()
        d.update({"weights": str(self.weights), "fastvideo": FASTVIDEO_VERSION, "model_fps": self.model_fps,
                  "model_size": list(self.model_size), "python": str(env_python()), "argv0": sys.argv[0]})
        return d
