"""The capture-backend interface shared by the embedded renderer and UnrealCV servers.

Every backend speaks OUR conventions (see :mod:`datagen.conventions`): metres, OpenCV camera
axes, camera-to-world 4x4 poses, planar depth in metres. A backend over UnrealCV converts at its
boundary using ``datagen.conventions`` and nothing else.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from datagen.conventions import intrinsics_from_fov

CAPTURE_KINDS = ("rgb", "depth", "normal", "mask")


@dataclass
class Frame:
    """One captured view. Arrays are None when that kind was not requested.

    rgb    (H, W, 3) uint8, sRGB.
    depth  (H, W) float32, planar depth in metres; ``inf`` where nothing was hit.
    normal (H, W, 3) float32 unit world-frame normals (ours); zeros where nothing was hit.
    mask   (H, W) int32 instance id (index into ``objects``); -1 where nothing was hit.
    c2w    (4, 4) float64 camera-to-world pose the frame was rendered from.
    K      (3, 3) float64 pinhole intrinsics.
    """

    c2w: np.ndarray
    K: np.ndarray
    rgb: Optional[np.ndarray] = None
    depth: Optional[np.ndarray] = None
    normal: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None
    meta: dict = field(default_factory=dict)


class BackendError(RuntimeError):
    """A backend could not do what was asked (connection lost, server error, bad argument)."""


class CaptureBackend(abc.ABC):
    """A camera in a scene that can be posed, moved with collision, and captured.

    Implementations: ``datagen.backends.embedded.EmbeddedBackend`` (in-process ray caster) and
    ``datagen.backends.unrealcv_client.UnrealCVBackend`` (any UnrealCV server: UE or ours).
    """

    # --- lifecycle -------------------------------------------------------------------------
    def connect(self) -> "CaptureBackend":
        return self

    def close(self) -> None:
        pass

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()

    # --- camera ----------------------------------------------------------------------------
    @abc.abstractmethod
    def set_resolution(self, width: int, height: int) -> None: ...

    @abc.abstractmethod
    def resolution(self) -> tuple[int, int]:
        """(width, height) in pixels."""

    @abc.abstractmethod
    def set_fov(self, fov_h_deg: float) -> None: ...

    @abc.abstractmethod
    def fov(self) -> float:
        """Horizontal field of view in degrees."""

    def intrinsics(self) -> np.ndarray:
        w, h = self.resolution()
        return intrinsics_from_fov(w, h, self.fov())

    @abc.abstractmethod
    def get_pose(self) -> np.ndarray:
        """Current camera-to-world 4x4 (ours)."""

    @abc.abstractmethod
    def set_pose(self, c2w: np.ndarray) -> None:
        """Teleport the camera (no collision check)."""

    @abc.abstractmethod
    def move_to(self, position_m: np.ndarray) -> np.ndarray:
        """Move the camera toward `position_m` (ours, metres) with a collision sweep.

        Stops before geometry; orientation is unchanged. Returns the position actually reached.
        """

    # --- capture ---------------------------------------------------------------------------
    @abc.abstractmethod
    def capture(self, kinds: Iterable[str] = ("rgb", "depth")) -> Frame:
        """Render the current view. `kinds` is a subset of CAPTURE_KINDS."""

    def capture_batch(self, poses: Iterable[np.ndarray], kinds: Iterable[str] = ("rgb", "depth")) -> list[Frame]:
        """Render several poses (backends may pipeline; the default loops)."""
        kinds = tuple(kinds)
        out = []
        for c2w in poses:
            self.set_pose(c2w)
            out.append(self.capture(kinds))
        return out

    # --- scene -----------------------------------------------------------------------------
    @abc.abstractmethod
    def objects(self) -> list[str]:
        """Object names; mask ids index this list."""

    @abc.abstractmethod
    def scene_info(self) -> dict:
        """At least: {"scene_id", "family", "description", "bounds_min", "bounds_max", "spawn_c2w"}.

        bounds_* are the walkable volume in metres (ours); spawn_c2w a 4x4 list in free space.
        """
