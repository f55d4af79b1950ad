"""Capture backend over any UnrealCV server (a UE binary with the plugin, or `relic datagen serve`).

Built on the real ``unrealcv.Client``. Everything returned is in OUR conventions (metres, right-
handed world, OpenCV camera axes, camera-to-world 4x4, planar depth in metres with ``inf`` = no hit);
every conversion to/from UE (cm, left-handed, rotator degrees) goes through
:mod:`datagen.conventions`.

Transport behaviour
    * connect: up to ``retries`` attempts with exponential backoff (``backoff`` s doubling, max 8 s),
      then :class:`~datagen.backends.base.BackendError` naming what to check.
    * every exchange is a pipelined ``Client.request_batch`` (all requests written before any reply
      is read); a watchdog closes the socket when a batch takes longer than ``timeout`` seconds.
    * a dropped connection (or timeout) is re-established ONCE and the batch re-sent (batches are
      idempotent: they set the full pose before capturing); a second failure raises BackendError.
    * a server ``error ...`` reply raises BackendError with the command and the message.

Wire formats used: ``lit png`` (RGBA PNG), ``depth npy`` (float32 planar cm), ``normal png``
(UE world normals, see :mod:`datagen.unrealcv_server.encoding`), ``object_mask png`` decoded to
instance ids through ``vget /object/<name>/color`` (ids index :meth:`objects`; -1 = no object or
an unknown colour).
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from datagen import conventions as cv
from datagen.backends.base import CAPTURE_KINDS, BackendError, CaptureBackend, Frame
from datagen.scenes.library import load_scene
from datagen.unrealcv_server import encoding

log = logging.getLogger(__name__)

_VIEW = {"rgb": "lit png", "depth": "depth npy", "normal": "normal png", "mask": "object_mask png"}
_MAX_BACKOFF = 8.0


def _client_class():
    """``unrealcv.Client`` with a quiet receive thread and no in-client reconnect loop.

    The stock client retries a dead socket for ~1 minute inside its receive thread and lets the
    final ConnectionError escape the thread (a traceback on stderr). We fail fast instead (the
    backend reconnects itself) and hand any receive-thread failure to the waiting request.
    """
    import unrealcv

    class _Client(unrealcv.Client):
        RECONNECT_ATTEMPTS = 0

        def receive_loop_queue(self):
            try:
                super().receive_loop_queue()
            except ConnectionError:
                pass  # Client.receive already queued the error for the waiting request
            except Exception as e:  # e.g. a reply id mismatch
                self.recv_data_q.put(ConnectionError(f"receive failed: {e}"))

    return _Client


class UnrealCVBackend(CaptureBackend):
    """:class:`CaptureBackend` over an UnrealCV server.

    host, port: the server (UE: ``-cvport`` / unrealcv.ini Port; ours: ``relic datagen serve --port``).
    scene:      a Scene or scene file (JSON) giving bounds/spawn/description for :meth:`scene_info`
                (for real UE levels, kind "unreal" files from the ue_project exporter). Without it
                scene_info uses what the server says (``vget /scene/name``, ``vget /objects``) and
                has no bounds (None).
    timeout:    seconds one pipelined batch may take before the connection is dropped and retried.
    retries:    connection attempts (exponential backoff from ``backoff`` seconds).
    camera_id:  UnrealCV camera to drive (``moveto`` only exists for camera 0).
    batch_poses: poses per pipelined batch in :meth:`capture_batch`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 9000, scene=None, timeout: float = 30.0,
                 retries: int = 5, camera_id: int = 0, backoff: float = 0.5, batch_poses: int = 16):
        self.host, self.port = host, int(port)
        self.timeout, self.retries, self.backoff = float(timeout), max(1, int(retries)), float(backoff)
        self.camera_id = int(camera_id)
        self.batch_poses = max(1, int(batch_poses))
        self._scene_arg = scene
        self._scene = None
        self._client = None
        self._lock = threading.RLock()
        self._timed_out = False
        self._size: Optional[tuple[int, int]] = None
        self._fov: Optional[float] = None
        self._objects: Optional[list[str]] = None
        self._colours: Optional[list[tuple[int, int, int]]] = None

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> "UnrealCVBackend":
        with self._lock:
            if self._client is None:
                self._client = self._open()
        return self

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.disconnect()
                finally:
                    self._client = None

    def _open(self):
        cls = _client_class()
        delay, last = self.backoff, None
        for attempt in range(1, self.retries + 1):
            client = cls((self.host, self.port))
            if _connect_quietly(client):
                return client
            last = f"attempt {attempt}/{self.retries} failed"
            if attempt < self.retries:
                time.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF)
        raise BackendError(
            f"cannot connect to an UnrealCV server at {self.host}:{self.port} ({last}). Check that the "
            "server is running (`relic datagen serve --scene FILE --port PORT`, or the UE binary with "
            "-cvport=PORT / unrealcv.ini Port), that host and port match, and that no other client is "
            "connected (UnrealCV serves one client at a time).")

    # ------------------------------------------------------------------ transport
    def _batch(self, commands: Sequence[str], binary: Sequence[bool] = ()) -> list:
        """Send `commands` pipelined, return replies in order (bytes where `binary[i]`, else str).

        Reconnects once on a dropped connection or timeout; raises BackendError on an error reply.
        """
        binary = list(binary) + [False] * (len(commands) - len(binary))
        with self._lock:
            self.connect()
            try:
                replies = self._batch_once(commands)
            except (ConnectionError, TimeoutError, OSError) as e:
                log.warning("UnrealCV connection to %s:%d lost (%s); reconnecting once", self.host, self.port, e)
                self._drop()
                self.connect()
                try:
                    replies = self._batch_once(commands)
                except (ConnectionError, TimeoutError, OSError) as e2:
                    self._drop()
                    raise BackendError(f"UnrealCV server at {self.host}:{self.port} stopped answering "
                                       f"({e2}); is it still running?") from None
        out = []
        for cmd, rep, is_bin in zip(commands, replies, binary):
            if isinstance(rep, str) and rep.startswith("error"):
                raise BackendError(f"UnrealCV server answered {cmd!r} with: {rep}")
            if is_bin:
                # the client returns str when binary bytes happen to be valid utf-8: undo that
                out.append(rep.encode("utf-8") if isinstance(rep, str) else bytes(rep))
            else:
                out.append(rep.decode("utf-8", "replace") if isinstance(rep, (bytes, bytearray)) else rep)
        return out

    def _batch_once(self, commands: Sequence[str]) -> list:
        client = self._client
        self._timed_out = False
        timer = threading.Timer(self.timeout, self._abort, args=(client,))
        timer.daemon = True
        timer.start()
        try:
            replies = client.request_batch(list(commands))
        except AssertionError as e:  # reply id mismatch: the stream is out of sync
            raise ConnectionError(str(e)) from None
        finally:
            timer.cancel()
        if self._timed_out:
            raise TimeoutError(f"no complete reply within {self.timeout:.1f} s")
        if any(r is None for r in replies):  # the client's receive loop saw the socket go away
            raise ConnectionError("connection closed before all replies arrived")
        return replies

    def _abort(self, client) -> None:
        self._timed_out = True
        sock = client.sock
        if sock is not None:
            try:
                import socket

                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            except Exception:
                pass

    def request(self, command: str) -> str:
        """Send one raw text command (escape hatch); returns the reply, raises on ``error``."""
        return self._batch([command])[0]

    # ------------------------------------------------------------------ camera
    def _cam(self, rest: str) -> str:
        return f"/camera/{self.camera_id}/{rest}"

    def set_resolution(self, width: int, height: int) -> None:
        width, height = int(width), int(height)
        try:
            self._batch([f"vset {self._cam('size')} {width} {height}"])
        except BackendError:
            # older plugins size the capture by the viewport: fall back to setres
            self._batch([f"vrun setres {width}x{height}w"])
        self._size = (width, height)

    def resolution(self) -> tuple[int, int]:
        if self._size is None:
            try:
                w, h = self._batch([f"vget {self._cam('size')}"])[0].split()[:2]
                self._size = (int(w), int(h))
            except (BackendError, ValueError):
                rgb = encoding.decode_image(self._batch([f"vget {self._cam('lit png')}"], [True])[0])
                self._size = (rgb.shape[1], rgb.shape[0])
        return self._size

    def set_fov(self, fov_h_deg: float) -> None:
        fov = float(fov_h_deg)
        if not 0.0 < fov < 180.0:
            raise ValueError(f"horizontal FOV must be in (0, 180) degrees, got {fov}")
        self._batch([f"vset {self._cam('fov')} {fov:.6f}"])
        self._fov = fov

    def fov(self) -> float:
        if self._fov is None:
            self._fov = float(self._batch([f"vget {self._cam('fov')}"])[0])
        return self._fov

    def get_pose(self) -> np.ndarray:
        loc, rot = self._batch([f"vget {self._cam('location')}", f"vget {self._cam('rotation')}"])
        return cv.ue_pose_to_c2w(_floats(loc, 3), _floats(rot, 3))

    def _pose_commands(self, c2w) -> tuple[list[str], np.ndarray]:
        """vset commands for `c2w` and the c2w the server will hold (from the exact numbers sent)."""
        loc, rot = cv.c2w_to_ue_pose(np.asarray(c2w, np.float64))
        ls = [f"{v:.6f}" for v in loc]
        rs = [f"{v:.6f}" for v in rot]
        used = cv.ue_pose_to_c2w([float(v) for v in ls], [float(v) for v in rs])
        return [f"vset {self._cam('location')} {' '.join(ls)}", f"vset {self._cam('rotation')} {' '.join(rs)}"], used

    def set_pose(self, c2w: np.ndarray) -> None:
        cmds, _ = self._pose_commands(c2w)
        self._batch(cmds)

    def move_to(self, position_m: np.ndarray) -> np.ndarray:
        target = cv.ours_point_to_ue(np.asarray(position_m, np.float64).reshape(3))
        _, loc = self._batch([f"vset /camera/{self.camera_id}/moveto {target[0]:.6f} {target[1]:.6f} {target[2]:.6f}",
                              f"vget {self._cam('location')}"])
        return cv.ue_point_to_ours(_floats(loc, 3))

    # ------------------------------------------------------------------ capture
    def _capture_commands(self, kinds: tuple[str, ...]) -> list[str]:
        bad = [k for k in kinds if k not in CAPTURE_KINDS]
        if bad:
            raise ValueError(f"unknown capture kind(s) {bad}; choose from {CAPTURE_KINDS}")
        return [f"vget {self._cam(_VIEW[k])}" for k in kinds]

    def _decode(self, kinds: tuple[str, ...], replies: list[bytes], c2w: np.ndarray) -> Frame:
        frame = Frame(c2w=c2w, K=np.eye(3))
        for kind, data in zip(kinds, replies):
            if kind == "depth":
                frame.depth = cv.ue_depth_to_ours(encoding.decode_npy(data))
            elif kind == "rgb":
                frame.rgb = encoding.decode_image(data)
            elif kind == "normal":
                frame.normal = cv.ue_direction_to_ours(encoding.rgb_to_normals(encoding.decode_image(data)))
            elif kind == "mask":
                frame.mask = encoding.rgb_to_mask(encoding.decode_image(data), self._object_colours())
        shapes = {a.shape[:2] for a in (frame.rgb, frame.depth, frame.normal, frame.mask) if a is not None}
        if len(shapes) > 1:
            raise BackendError(f"captures of one frame have different sizes {sorted(shapes)}")
        if shapes:
            h, w = shapes.pop()
            self._size = (w, h)
            frame.K = cv.intrinsics_from_fov(w, h, self.fov())
        else:
            frame.K = self.intrinsics()
        frame.meta = {"width": self._size[0] if self._size else None,
                      "height": self._size[1] if self._size else None,
                      "source": f"unrealcv://{self.host}:{self.port}"}
        return frame

    def capture(self, kinds: Iterable[str] = ("rgb", "depth")) -> Frame:
        kinds = tuple(kinds)
        if "mask" in kinds:
            self._object_colours()
        cmds = [f"vget {self._cam('location')}", f"vget {self._cam('rotation')}"] + self._capture_commands(kinds)
        rep = self._batch(cmds, [False, False] + [True] * len(kinds))
        c2w = cv.ue_pose_to_c2w(_floats(rep[0], 3), _floats(rep[1], 3))
        return self._decode(kinds, rep[2:], c2w)

    def capture_batch(self, poses: Iterable[np.ndarray], kinds: Iterable[str] = ("rgb", "depth")) -> list[Frame]:
        """Set pose + capture for every pose, pipelined `batch_poses` poses per request_batch.

        Each frame's c2w is the pose the server holds (the exact numbers sent, at 1e-6 cm/deg).
        """
        kinds = tuple(kinds)
        cap = self._capture_commands(kinds)
        if "mask" in kinds:
            self._object_colours()
        poses = [np.asarray(p, np.float64) for p in poses]
        frames: list[Frame] = []
        for start in range(0, len(poses), self.batch_poses):
            chunk = poses[start:start + self.batch_poses]
            cmds, binary, used = [], [], []
            for c2w in chunk:
                pc, u = self._pose_commands(c2w)
                cmds += pc + cap
                binary += [False] * len(pc) + [True] * len(cap)
                used.append(u)
            rep = self._batch(cmds, binary)
            per = 2 + len(cap)
            for i, u in enumerate(used):
                frames.append(self._decode(kinds, rep[i * per + 2:(i + 1) * per], u))
        return frames

    # ------------------------------------------------------------------ scene
    def objects(self) -> list[str]:
        if self._objects is None:
            self._objects = self._batch(["vget /objects"])[0].split()
        return list(self._objects)

    def _object_colours(self) -> list[tuple[int, int, int]]:
        if self._colours is None:
            names = self.objects()
            reps = self._batch([f"vget /object/{n}/color" for n in names]) if names else []
            self._colours = [_parse_colour(r) for r in reps]
        return self._colours

    def _scene_obj(self):
        if self._scene is None and self._scene_arg is not None:
            if isinstance(self._scene_arg, (str, Path)):
                self._scene = load_scene(self._scene_arg)
            else:
                self._scene = self._scene_arg
        return self._scene

    def scene_info(self) -> dict:
        """Scene metadata. With a scene file: its summary (bounds, spawn, description). Without:
        ``scene_id`` from ``vget /scene/name``, family "unknown", bounds None, spawn = current pose."""
        scene = self._scene_obj()
        if scene is not None:
            info = dict(scene.summary()) if hasattr(scene, "summary") else {}
            info.setdefault("scene_id", getattr(scene, "scene_id", "scene"))
            info["server"] = f"{self.host}:{self.port}"
            return info
        name = self._batch(["vget /scene/name"])[0].strip()
        return {"scene_id": name, "family": "unknown", "kind": "unreal",
                "description": f"UnrealCV level {name} with {len(self.objects())} objects",
                "bounds_min": None, "bounds_max": None, "spawn_c2w": self.get_pose().tolist(),
                "server": f"{self.host}:{self.port}"}


def _connect_quietly(client) -> bool:
    """client.connect() with its prints and error logs silenced (the caller reports failures)."""
    import contextlib
    import io

    ulog = logging.getLogger("unrealcv")
    level = ulog.level
    ulog.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ok = client.connect()
    finally:
        ulog.setLevel(level)
    return bool(ok)


def _floats(text: str, n: int) -> list[float]:
    try:
        v = [float(x) for x in text.split()]
    except ValueError:
        raise BackendError(f"expected {n} numbers from the server, got {text!r}") from None
    if len(v) != n:
        raise BackendError(f"expected {n} numbers from the server, got {text!r}")
    return v


def _parse_colour(text: str) -> tuple[int, int, int]:
    import re

    m = re.search(r"R=(\d+)\D+G=(\d+)\D+B=(\d+)", text)
    if not m:
        raise BackendError(f"cannot parse object colour {text!r} (expected '(R=..,G=..,B=..,A=..)')")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))

