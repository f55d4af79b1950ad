"""UnrealCV command table, parsing and dispatch onto a :class:`~datagen.backends.base.CaptureBackend`.

The dispatcher turns one command string (``"vget /camera/0/location"``) into one reply body
(``str`` text or ``bytes`` for images/arrays). Everything on the wire is in Unreal Engine units and
axes (cm, left-handed, X forward / Y right / Z up, rotator pitch/yaw/roll in degrees); the backend
speaks ours (metres, OpenCV camera, c2w). The two meet ONLY through :mod:`datagen.conventions`.

Replies
    success without a value: ``"ok"``; failure: ``"error <message>"`` (the connection stays up).
    location: ``"x y z"`` cm ``%.3f``; rotation: ``"pitch yaw roll"`` degrees ``%.3f``, as set
    (angles are not re-normalised); pose: ``"x y z pitch yaw roll"``; fov: horizontal degrees
    ``%.3f``; size: ``"W H"`` pixels.
    Captures (see :mod:`datagen.unrealcv_server.encoding`): ``lit|normal|object_mask png|bmp``,
    ``depth npy`` (float32 (H, W) planar depth in cm; no hit -> ``ours_depth_to_ue``'s far value,
    1e6 cm). A filename argument instead of a format (``.png``/``.bmp``/``.npy``) saves the file on
    the server and replies with its absolute path, like the plugin.

The camera pose is kept here as the exact UE numbers the client sent (location cm, rotator deg), and
pushed to the backend as ``ue_pose_to_c2w(location, rotation)``, so a pose set over the protocol and
the same numbers converted in-process give bit-identical renders.

One render serves several captures: before rendering, the dispatcher looks ahead at requests that
have already arrived (``upcoming``) and renders every kind asked for at the same camera state in one
backend call; the frame is cached until the next state change (any ``vset``/``vrun``).
"""
from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Optional


from datagen import conventions as cv
from datagen.backends.base import CaptureBackend, Frame
from datagen.unrealcv_server import encoding
from datagen.unrealcv_server.savedir import SaveFolder, SaveRefused

log = logging.getLogger(__name__)

SERVER_NAME = "relic-embedded"
# UnrealCV API level we mimic (>= 1.1.0 so the client trusts `vget /unrealcv/commands`,
# < 2.0.0 so it does not expect "UnrealCV Plus" commands).
PROTOCOL_VERSION = "v1.1.0"
MAX_SIDE = 4096  # pixels; larger sizes are refused (they would exhaust memory, not render)
MAX_PIXELS = 4096 * 2048
MAX_COORD_CM = 1e9  # |coordinate| above this is refused (beyond any scene; float32 trouble)

# capture view mode -> Frame field / backend kind
VIEW_KINDS = {"lit": "rgb", "depth": "depth", "normal": "normal", "object_mask": "mask"}
IMAGE_FORMATS = ("png", "bmp")


class CommandError(ValueError):
    """Bad command or arguments; replied as ``error <message>``."""


@dataclass(frozen=True)
class Route:
    verb: str            # vget | vset | vrun | vbatch
    pattern: re.Pattern  # matched against the path (vget/vset) or the first argument (vrun)
    template: str        # as listed by `vget /unrealcv/commands` ([placeholders] in brackets)
    handler: str         # CommandDispatcher method name
    changes_state: bool  # invalidates the cached frame


def _r(verb: str, path: str, template: str, handler: str, changes_state: bool = False) -> Route:
    return Route(verb, re.compile(path), template, handler, changes_state)


_CAM = r"/camera/(?P<cam>[^/\s]+)"
ROUTES: tuple[Route, ...] = (
    _r("vget", r"/unrealcv/status", "vget /unrealcv/status", "get_status"),
    _r("vget", r"/unrealcv/version", "vget /unrealcv/version", "get_version"),
    _r("vget", r"/unrealcv/commands", "vget /unrealcv/commands", "get_commands"),
    _r("vbatch", r"", "vbatch [n]", "vbatch"),
    _r("vget", r"/scene/name", "vget /scene/name", "get_scene_name"),
    _r("vget", r"/level/name", "vget /level/name", "get_level_name"),
    _r("vget", r"/objects", "vget /objects", "get_objects"),
    _r("vget", r"/object/(?P<obj>[^/\s]+)/color", "vget /object/[name]/color", "get_object_color"),
    _r("vget", r"/cameras", "vget /cameras", "get_cameras"),
    _r("vget", _CAM + r"/location", "vget /camera/[id]/location", "get_location"),
    _r("vset", _CAM + r"/location", "vset /camera/[id]/location [x] [y] [z]", "set_location", True),
    _r("vget", _CAM + r"/rotation", "vget /camera/[id]/rotation", "get_rotation"),
    _r("vset", _CAM + r"/rotation", "vset /camera/[id]/rotation [pitch] [yaw] [roll]", "set_rotation", True),
    _r("vget", _CAM + r"/pose", "vget /camera/[id]/pose", "get_pose"),
    _r("vset", _CAM + r"/pose", "vset /camera/[id]/pose [x] [y] [z] [pitch] [yaw] [roll]", "set_pose", True),
    _r("vget", _CAM + r"/fov", "vget /camera/[id]/fov", "get_fov"),
    _r("vset", _CAM + r"/fov", "vset /camera/[id]/fov [fov]", "set_fov", True),
    _r("vget", _CAM + r"/size", "vget /camera/[id]/size", "get_size"),
    _r("vset", _CAM + r"/size", "vset /camera/[id]/size [width] [height]", "set_size", True),
    _r("vset", _CAM + r"/moveto", "vset /camera/[id]/moveto [x] [y] [z]", "moveto", True),
    _r("vget", _CAM + r"/lit", "vget /camera/[id]/lit [fmt]", "capture"),
    _r("vget", _CAM + r"/depth", "vget /camera/[id]/depth [fmt]", "capture"),
    _r("vget", _CAM + r"/normal", "vget /camera/[id]/normal [fmt]", "capture"),
    _r("vget", _CAM + r"/object_mask", "vget /camera/[id]/object_mask [fmt]", "capture"),
    _r("vrun", r"setres", "vrun setres [WxH]", "setres", True),
    _r("vset", r"/viewmode", "vset /viewmode [mode]", "set_viewmode"),
    _r("vget", r"/viewmode", "vget /viewmode", "get_viewmode"),
    _r("vset", r"/action/game/pause", "vset /action/game/pause", "pause"),
    _r("vset", r"/action/game/resume", "vset /action/game/resume", "resume"),
    _r("vget", r"/action/game/is_paused", "vget /action/game/is_paused", "is_paused"),
)
COMMAND_TEMPLATES: tuple[str, ...] = tuple(r.template for r in ROUTES)
_VBATCH = next(r for r in ROUTES if r.verb == "vbatch")


@dataclass
class ParsedCommand:
    route: Route
    match: dict
    args: list[str]
    text: str


def parse_command(text: str) -> ParsedCommand:
    """Find the route of one command string; raises CommandError for unknown commands."""
    tokens = text.split()
    if not tokens:
        raise CommandError("empty command")
    verb = tokens[0]
    if verb == "vbatch":
        return ParsedCommand(_VBATCH, {}, tokens[1:], text)
    if verb not in ("vget", "vset", "vrun"):
        raise CommandError(f"unknown command '{_short(text)}': commands start with vget, vset, vrun or vbatch")
    if len(tokens) < 2:
        raise CommandError(f"'{verb}' needs a path, see 'vget /unrealcv/commands'")
    key, args = tokens[1], tokens[2:]
    for route in ROUTES:
        if route.verb == verb:
            m = route.pattern.fullmatch(key)
            if m:
                return ParsedCommand(route, m.groupdict(), args, text)
    if verb == "vrun":
        raise CommandError(f"console command '{_short(key)}' is not supported by {SERVER_NAME} (only setres)")
    raise CommandError(f"unknown command '{_short(text)}', see 'vget /unrealcv/commands'")


def _short(s: str, n: int = 80) -> str:
    s = s.replace("\n", " ")
    return s if len(s) <= n else s[:n] + "..."


def _floats(args: list[str], n: int, what: str) -> list[float]:
    if len(args) != n:
        raise CommandError(f"expected {n} numbers ({what}), got {len(args)}")
    out = []
    for a in args:
        try:
            v = float(a)
        except ValueError:
            raise CommandError(f"not a number: '{_short(a, 30)}' ({what})") from None
        if not math.isfinite(v):
            raise CommandError(f"not a finite number: '{a}' ({what})")
        out.append(v)
    return out


def _fmt(values: Iterable[float]) -> str:
    return " ".join(f"{float(v):.3f}" for v in values)


class CommandDispatcher:
    """Executes UnrealCV commands against one backend (camera 0 = the backend's camera).

    Not thread-safe: one server loop owns it. State (pose, fov, size, pause flag, view mode) lives
    as long as the dispatcher, so it survives client reconnections, as in the plugin.
    """

    def __init__(self, backend: CaptureBackend, port: int = 0, host: str = "127.0.0.1",
                 png_level: int = encoding.PNG_LEVEL, save: Optional[SaveFolder] = None):
        self.backend = backend
        self.save = save if save is not None else SaveFolder(None)
        self.png_level = int(png_level)
        self.port, self.host = port, host
        self.client_connected = False
        info = backend.scene_info()
        self.scene_id = str(info.get("scene_id", "scene"))
        self.level_name = str(info.get("level", info.get("family", self.scene_id)))
        names = list(backend.objects())
        self._proto_names = _protocol_names(names)
        self._name_to_index = {n: i for i, n in enumerate(self._proto_names)}
        loc, rot = cv.c2w_to_ue_pose(backend.get_pose())
        self.location = [float(v) for v in loc]
        self.rotation = [float(v) for v in rot]
        self.viewmode = "lit"
        self.paused = False
        self._frame: Optional[Frame] = None
        self._frame_kinds: set[str] = set()

    def set_save_folder(self, save: SaveFolder) -> None:
        self.save = save

    # ------------------------------------------------------------------ dispatch
    def execute(self, text: str, upcoming: Iterable[str] = ()) -> bytes | str:
        """Run one command; returns the reply body. Never raises for bad input.

        `upcoming`: commands already received after this one (used to render several capture kinds
        in one pass). Only their text is inspected.
        """
        try:
            cmd = parse_command(text)
            if cmd.route.changes_state:
                self._invalidate()
            handler: Callable = getattr(self, cmd.route.handler)
            return handler(cmd, upcoming)
        except CommandError as e:
            return f"error {e}"
        except Exception as e:  # a backend failure must not take the server down
            log.warning("command %r failed", _short(text), exc_info=True)
            return f"error {type(e).__name__}: {e}"

    def _invalidate(self) -> None:
        self._frame, self._frame_kinds = None, set()

    def _camera(self, cmd: ParsedCommand) -> int:
        cam = cmd.match.get("cam", "0")
        if cam != "0":
            raise CommandError(f"camera '{_short(cam, 20)}' does not exist ({SERVER_NAME} has camera 0 only)")
        return 0

    def _no_args(self, cmd: ParsedCommand) -> None:
        if cmd.args:
            raise CommandError(f"'{cmd.route.template}' takes no arguments")

    def _push_pose(self) -> None:
        self.backend.set_pose(cv.ue_pose_to_c2w(self.location, self.rotation))

    # ------------------------------------------------------------------ server info
    def get_status(self, cmd, upcoming):
        w, h = self.backend.resolution()
        return "\n".join([
            "Is Listening", "Client Connected" if self.client_connected else "No Client Connected",
            str(self.port), "Configuration", f"Server: {SERVER_NAME} {self.scene_id}",
            f"Port: {self.port}", f"Width: {w}", f"Height: {h}", f"FOV: {self.backend.fov():.6f}",
            "EnableInput: false", "EnableRightEye: false", ""])

    def get_version(self, cmd, upcoming):
        return PROTOCOL_VERSION

    def get_commands(self, cmd, upcoming):
        return "\n".join(COMMAND_TEMPLATES)

    def vbatch(self, cmd, upcoming):
        # The plugin runs the next N requests in one engine tick; we have no ticks, every request
        # runs as soon as it arrives, in order. Validate N and acknowledge.
        if len(cmd.args) != 1 or not cmd.args[0].isdigit():
            raise CommandError("usage: vbatch N (N = number of following requests)")
        return "ok"

    def get_scene_name(self, cmd, upcoming):
        return self.scene_id

    def get_level_name(self, cmd, upcoming):
        return self.level_name

    def get_objects(self, cmd, upcoming):
        return " ".join(self._proto_names)

    def get_object_color(self, cmd, upcoming):
        name = cmd.match["obj"]
        if name not in self._name_to_index:
            raise CommandError(f"object '{_short(name, 40)}' not found, see 'vget /objects'")
        r, g, b = encoding.instance_colour(self._name_to_index[name])
        return f"(R={r},G={g},B={b},A=255)"

    def get_cameras(self, cmd, upcoming):
        return "relic_camera_0"

    # ------------------------------------------------------------------ camera
    def get_location(self, cmd, upcoming):
        self._camera(cmd)
        return _fmt(self.location)

    def set_location(self, cmd, upcoming):
        self._camera(cmd)
        loc = self._coords(cmd.args, "x y z in cm")
        self.location = loc
        self._push_pose()
        return "ok"

    def get_rotation(self, cmd, upcoming):
        self._camera(cmd)
        return _fmt(self.rotation)

    def set_rotation(self, cmd, upcoming):
        self._camera(cmd)
        self.rotation = _floats(cmd.args, 3, "pitch yaw roll in degrees")
        self._push_pose()
        return "ok"

    def get_pose(self, cmd, upcoming):
        self._camera(cmd)
        return _fmt(self.location + self.rotation)

    def set_pose(self, cmd, upcoming):
        self._camera(cmd)
        v = _floats(cmd.args, 6, "x y z pitch yaw roll")
        self.location = self._coords([str(x) for x in v[:3]], "x y z in cm")
        self.rotation = v[3:]
        self._push_pose()
        return "ok"

    def _coords(self, args, what):
        v = _floats(args, 3, what)
        if max(abs(x) for x in v) > MAX_COORD_CM:
            raise CommandError(f"coordinates beyond +-{MAX_COORD_CM:g} cm")
        return v

    def get_fov(self, cmd, upcoming):
        self._camera(cmd)
        return f"{self.backend.fov():.3f}"

    def set_fov(self, cmd, upcoming):
        self._camera(cmd)
        (fov,) = _floats(cmd.args, 1, "horizontal fov in degrees")
        if not 0.0 < fov < 180.0:
            raise CommandError(f"fov must be in (0, 180) degrees, got {fov:g}")
        self.backend.set_fov(fov)
        return "ok"

    def get_size(self, cmd, upcoming):
        self._camera(cmd)
        w, h = self.backend.resolution()
        return f"{w} {h}"

    def set_size(self, cmd, upcoming):
        self._camera(cmd)
        if len(cmd.args) != 2 or not all(a.isdigit() for a in cmd.args):
            raise CommandError("usage: vset /camera/[id]/size WIDTH HEIGHT (positive integers)")
        self._resize(int(cmd.args[0]), int(cmd.args[1]))
        return "ok"

    def setres(self, cmd, upcoming):
        m = re.fullmatch(r"(\d{1,6})x(\d{1,6})([wf]?)", cmd.args[0]) if len(cmd.args) == 1 else None
        if not m:
            raise CommandError("usage: vrun setres WxH[w|f] (e.g. setres 640x480w)")
        self._resize(int(m.group(1)), int(m.group(2)))
        return "ok"

    def _resize(self, w: int, h: int) -> None:
        if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE and w * h <= MAX_PIXELS):
            raise CommandError(f"size {w}x{h} out of range (sides 1..{MAX_SIDE}, at most {MAX_PIXELS} pixels)")
        self.backend.set_resolution(w, h)

    def moveto(self, cmd, upcoming):
        cam = cmd.match.get("cam", "0")
        if cam != "0":
            raise CommandError("moveto is only supported for camera 0")
        target = self._coords(cmd.args, "x y z in cm")
        reached = self.backend.move_to(cv.ue_point_to_ours(target))
        self.location = [float(v) for v in cv.ours_point_to_ue(reached)]
        # Re-assert the exact pose (location from the sweep, rotation as set).
        self._push_pose()
        return "ok"

    # ------------------------------------------------------------------ capture
    def capture(self, cmd, upcoming):
        self._camera(cmd)
        view = cmd.route.template.split("/")[-1].split()[0]
        if len(cmd.args) != 1:
            raise CommandError(f"usage: vget /camera/[id]/{view} {'npy' if view == 'depth' else 'png|bmp'} "
                               "(or a file name)")
        fmt, path = _capture_format(view, cmd.args[0])
        kind = VIEW_KINDS[view]
        frame = self._frame_with(kind, upcoming)
        data = self._encode(frame, kind, fmt)
        if path is None:
            return data
        try:
            return str(self.save.save(path, data))
        except SaveRefused as e:
            raise CommandError(str(e)) from None

    def _frame_with(self, kind: str, upcoming: Iterable[str]) -> Frame:
        if self._frame is not None and kind in self._frame_kinds:
            return self._frame
        # depth comes with the ray cast every kind needs, so it is always rendered alongside
        kinds = {kind, "depth"} | self._kinds_ahead(upcoming)
        frame = self.backend.capture(tuple(k for k in ("rgb", "depth", "normal", "mask") if k in kinds))
        self._frame, self._frame_kinds = frame, kinds
        return frame

    @staticmethod
    def _kinds_ahead(upcoming: Iterable[str]) -> set[str]:
        """Capture kinds requested by already-received commands before the next state change."""
        kinds: set[str] = set()
        for text in upcoming:
            try:
                nxt = parse_command(text)
            except CommandError:
                continue
            if nxt.route.changes_state:
                break
            if nxt.route.handler == "capture" and nxt.match.get("cam") == "0":
                kinds.add(VIEW_KINDS[nxt.route.template.split("/")[-1].split()[0]])
        return kinds

    def _encode(self, frame: Frame, kind: str, fmt: str) -> bytes:
        if kind == "depth":
            return encoding.encode_npy(cv.ours_depth_to_ue(frame.depth))
        if kind == "rgb":
            rgb = frame.rgb
        elif kind == "mask":
            rgb = encoding.mask_to_rgb(frame.mask, len(self._proto_names))
        else:  # normal: our world frame -> UE world frame (a direction: flip Y, no scaling)
            rgb = encoding.normals_to_rgb(cv.ours_direction_to_ue(frame.normal))
        return encoding.encode_png(rgb, self.png_level) if fmt == "png" else encoding.encode_bmp(rgb)

    # ------------------------------------------------------------------ misc
    def set_viewmode(self, cmd, upcoming):
        if len(cmd.args) != 1 or cmd.args[0] not in VIEW_KINDS:
            raise CommandError(f"usage: vset /viewmode {{{'|'.join(VIEW_KINDS)}}}")
        self.viewmode = cmd.args[0]
        return "ok"

    def get_viewmode(self, cmd, upcoming):
        return self.viewmode

    def pause(self, cmd, upcoming):
        self._no_args(cmd)
        self.paused = True  # the embedded scenes are static: nothing moves either way
        return "ok"

    def resume(self, cmd, upcoming):
        self._no_args(cmd)
        self.paused = False
        return "ok"

    def is_paused(self, cmd, upcoming):
        return "true" if self.paused else "false"


def _capture_format(view: str, arg: str) -> tuple[str, Optional[str]]:
    """(format, file path or None) of a capture argument."""
    allowed = ("npy",) if view == "depth" else IMAGE_FORMATS
    if arg in allowed:
        return arg, None
    ext = os.path.splitext(arg)[1].lstrip(".").lower()
    if ext in allowed:
        return ext, arg
    raise CommandError(f"{view} supports {'|'.join(allowed)} (or a file name ending in one), got '{_short(arg, 40)}'")


def _protocol_names(names: list[str]) -> list[str]:
    """Object names usable in space-separated replies and paths: whitespace and '/' become '_',
    duplicates get a numeric suffix. Index i still refers to the backend's object i."""
    out, seen = [], set()
    for i, n in enumerate(names):
        p = re.sub(r"[\s/]+", "_", str(n)) or f"object_{i}"
        base, k = p, 1
        while p in seen:
            k += 1
            p = f"{base}_{k}"
        seen.add(p)
        out.append(p)
    return out
