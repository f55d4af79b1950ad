"""In-process capture backend over the embedded renderer (no server, no network).

``EmbeddedBackend(scene)`` accepts a :class:`Scene`, or a path to a scene file. The camera starts
at the scene's spawn pose; ``move_to`` is collision-constrained through ``Scene.sweep`` with
``radius`` metres of clearance (orientation unchanged). Everything is in our conventions
(metres, OpenCV camera axes, camera-to-world 4x4; planar depth in metres).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from datagen.backends.base import CAPTURE_KINDS, BackendError, CaptureBackend, Frame
from datagen.conventions import intrinsics_from_fov
from datagen.render.renderer import Renderer
from datagen.scenes.library import load_scene
from datagen.scenes.scene import Scene


class EmbeddedBackend(CaptureBackend):
    def __init__(self, scene: Scene | str | Path, width: int = 112, height: int = 64, fov: float = 90.0,
                 shadows: bool = True, radius: float = 0.2):
        if isinstance(scene, (str, Path)):
            scene = load_scene(scene)
        if not isinstance(scene, Scene):
            raise TypeError(f"EmbeddedBackend needs a Scene or a scene file path, got {type(scene).__name__}")
        self.scene = scene
        self.renderer = Renderer(scene)
        self.shadows = bool(shadows)
        self.radius = float(radius)
        self._w, self._h = 0, 0
        self._fov = 90.0
        self.set_resolution(width, height)
        self.set_fov(fov)
        self._c2w = np.array(scene.spawn_c2w, np.float64)

    # camera
    def set_resolution(self, width: int, height: int) -> None:
        width, height = int(width), int(height)
        if width <= 0 or height <= 0 or width > 8192 or height > 8192:
            raise BackendError(f"resolution must be within 1..8192 pixels per side, got {width}x{height}")
        self._w, self._h = width, height

    def resolution(self) -> tuple[int, int]:
        return self._w, self._h

    def set_fov(self, fov_h_deg: float) -> None:
        fov_h_deg = float(fov_h_deg)
        if not (0.0 < fov_h_deg < 180.0):
            raise BackendError(f"horizontal FOV must be in (0, 180) degrees, got {fov_h_deg}")
        self._fov = fov_h_deg

    def fov(self) -> float:
        return self._fov

    def intrinsics(self) -> np.ndarray:
        return intrinsics_from_fov(self._w, self._h, self._fov)

    def get_pose(self) -> np.ndarray:
        return self._c2w.copy()

    def set_pose(self, c2w: np.ndarray) -> None:
        c2w = np.asarray(c2w, np.float64)
        if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
            raise BackendError(f"pose must be a finite 4x4 camera-to-world matrix, got shape {c2w.shape}")
        self._c2w = c2w.copy()

    def move_to(self, position_m: np.ndarray) -> np.ndarray:
        target = np.asarray(position_m, np.float64).reshape(3)
        if not np.all(np.isfinite(target)):
            raise BackendError("move_to target must be finite")
        reached = self.scene.sweep(self._c2w[:3, 3], target, self.radius)
        self._c2w[:3, 3] = reached
        return reached.copy()

    # capture
    def capture(self, kinds: Iterable[str] = ("rgb", "depth")) -> Frame:
        kinds = tuple(kinds)
        bad = [k for k in kinds if k not in CAPTURE_KINDS]
        if bad:
            raise BackendError(f"unknown capture kind(s) {bad}; choose from {CAPTURE_KINDS}")
        f = self.renderer.render(self._c2w, self.intrinsics(), self._w, self._h, kinds, shadows=self.shadows)
        f.meta.update({"scene_id": self.scene.scene_id, "fov": self._fov, "backend": "embedded"})
        return f

    # scene
    def objects(self) -> list[str]:
        return [o.name for o in self.scene.objects]

    def scene_info(self) -> dict:
        s = self.scene
        return {
            "scene_id": s.scene_id, "family": s.family, "description": s.description,
            "bounds_min": s.bounds_min.tolist(), "bounds_max": s.bounds_max.tolist(),
            "spawn_c2w": s.spawn_c2w.tolist(), "camera_height": s.camera_height, "kind": s.kind,
            "objects": [o.to_dict() for o in s.objects],
        }
