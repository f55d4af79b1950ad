"""UnrealCV command table, parsing and dispatch onto a :class:`~datagen.backends.base.CaptureBackend`.

The dispatcher turns one command string (``"vget /camera/0/location"``) into one reply body
(``str`` text or ``bytes`` for images/arrays). Everything on the wire is in Unreal Engine units and
axes (cm, left-handed, X forward / Y right / Z up, rotator pitch/yaw/roll in degrees); the backend
speaks ours (metres, OpenCV camera, c2w). The two meet ONLY through :mod:`datagen.conventions`.

The command contract follows the UnrealCV plugin (``docs/reference/commands.rst`` and the
``*Handler.cpp`` files of github.com/unrealcv/unrealcv, 4.27 branch, plus the 0.3.x forms clients
still send):

Replies
    success without a value: ``"ok"``; failure: ``"error <message>"`` (the connection stays up).
    A command no handler matches: ``"error Can not find a handler for URI '<command>'"`` (the
    plugin's text; client code and version probes match it). A plugin command that has no meaning
    in the embedded renderer (loading a UE level, spawning actors, moving scene objects, ...):
    ``"error Not Implemented: <why>"`` (the plugin's own ``FExecStatus::NotImplemented`` text).
    location: ``"x y z"`` cm ``%.3f``; rotation: ``"pitch yaw roll"`` degrees ``%.3f``, as set
    (angles are not re-normalised); pose: ``"x y z pitch yaw roll"``; fov: horizontal degrees
    ``%.3f``; size: ``"W H"`` pixels.
    Captures (see :mod:`datagen.unrealcv_server.encoding`): ``lit|normal|object_mask|seg png|bmp``,
    ``depth|plane_depth|vis_depth npy`` (float32 (H, W) depth in cm: planar, planar, distance along
    the ray; no hit -> 1e6 cm). A file name instead of a format (``.png``/``.bmp``/``.npy``) saves
    the file inside the save folder (:mod:`datagen.unrealcv_server.savedir`) and replies with its
    absolute path; no argument saves under a generated name (``00000001.png``; ``.npy`` for
    depth), as the plugin does.

Cameras
    Camera 0 is the player camera (the plugin's pawn): ``moveto`` (collision sweep) works on it
    only, ``vget /actor/location|rotation`` report it. Camera 1 is the right eye of a stereo pair:
    it follows camera 0 at ``eyes_distance`` cm along camera 0's right axis with camera 0's
    rotation, until a client sets its own location/rotation/pose (then it is independent;
    ``vset /action/eyes_distance D`` attaches it again at D cm). ``vset /cameras/spawn`` adds
    independent cameras (up to :data:`MAX_CAMERAS`). Every camera has its own pose, horizontal FOV
    and size; ``vrun setres WxH`` resizes every camera, ``vset /camera/N/size`` one.

The camera poses are kept here as the exact UE numbers the client sent (location cm, rotator deg),
and pushed to the backend as ``ue_pose_to_c2w(location, rotation)`` right before a capture, so a
pose set over the protocol and the same numbers converted in-process give bit-identical renders.

One render serves several captures: before rendering, the dispatcher looks ahead at requests that
have already arrived (``upcoming``) and renders every kind asked for of the same camera at the same
state in one backend call; the frame is cached until the next state change (any ``vset``/``vrun``).
"""
from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import numpy as np

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
MAX_CAMERAS = 8
DEFAULT_EYES_DISTANCE_CM = 40.0  # the plugin's right-eye offset (CaptureManager: FVector(0, 40, 0))
NO_HANDLER = "Can not find a handler for URI"
NOT_IMPLEMENTED = "Not Implemented"

# capture view mode -> Frame field / backend kind
VIEW_KINDS = {"lit": "rgb", "depth": "depth", "plane_depth": "depth", "vis_depth": "depth",
              "normal": "normal", "object_mask": "mask", "seg": "mask"}
DEPTH_VIEWS = ("depth", "plane_depth", "vis_depth")
IMAGE_FORMATS = ("png", "bmp")
VIEWMODES = ("lit", "depth", "normal", "object_mask")
# `vrun` console commands that change nothing a static CPU-rendered scene has (frame rate, time
# dilation, quality, on-screen stats and messages): accepted with "ok", as the UE console would.
NO_EFFECT_CONSOLE = re.compile(r"(t\.maxfps|slomo|stat|show|showflag\.\S+|r\.\S+|sg\.\S+|fx\.\S+|"
                               r"disableallscreenmessages|enableallscreenmessages|pause)", re.IGNORECASE)


class CommandError(ValueError):
    """Bad command or arguments; replied as ``error <message>``."""


class NotImplementedCommand(CommandError):
    """A plugin command that has no meaning here; replied as ``error Not Implemented: <why>``."""


@dataclass(frozen=True)
class Route:
    verb: str            # vget | vset | vrun | vbatch
    pattern: re.Pattern  # matched against the path (vget/vset) or the first argument (vrun)
    templates: tuple     # as listed by `vget /unrealcv/commands` ([placeholders] in brackets)
    handler: str         # CommandDispatcher method name ("" = not implemented)
    changes_state: bool  # invalidates the cached frames
    help: str            # one line for `vget /unrealcv/help`

    @property
    def template(self) -> str:
        return self.templates[0]

    @property
    def implemented(self) -> bool:
        return bool(self.handler)


def _r(verb: str, path: str, templates, handler: str, help: str, changes_state: bool = False) -> Route:
    if isinstance(templates, str):
        templates = (templates,)
    return Route(verb, re.compile(path), tuple(templates), handler, changes_state, help)


def _ni(verb: str, path: str, template: str, why: str) -> Route:
    """A plugin command with no meaning in the embedded renderer."""
    return Route(verb, re.compile(path), (template,), "", False, f"(not implemented here: {why})")


_CAM = r"/camera/(?P<cam>[^/\s]+)"
_OBJ = r"/object/(?P<obj>[^/\s]+)"


def _capture_routes() -> list[Route]:
    out = []
    for view in VIEW_KINDS:
        fmt = "npy" if view in DEPTH_VIEWS else "png|bmp"
        what = {"lit": "the lit (RGB) image", "depth": "planar depth (cm)", "plane_depth": "planar depth (cm)",
                "vis_depth": "depth along each pixel's ray (cm)", "normal": "world normals",
                "object_mask": "the instance mask", "seg": "the instance mask (alias of object_mask)"}[view]
        out.append(_r("vget", _CAM + "/" + view, (f"vget /camera/[id]/{view} [fmt]", f"vget /camera/[id]/{view}"),
                      "capture", f"Get {what}: {fmt} bytes, or save to a file name (none: generated name) "
                                 "inside the save folder and reply its path"))
    return out


ROUTES: tuple[Route, ...] = (
    # plugin
    _r("vget", r"/unrealcv/status", "vget /unrealcv/status", "get_status", "Get the status of the server"),
    _r("vget", r"/unrealcv/help", "vget /unrealcv/help", "get_help",
       "List all available commands and their help message"),
    _r("vget", r"/unrealcv/commands", "vget /unrealcv/commands", "get_commands",
       "List the command templates this server supports, one per line"),
    _r("vget", r"/unrealcv/echo", "vget /unrealcv/echo [str]", "echo", "[debug] Echo back the message"),
    _r("vget", r"/unrealcv/version", "vget /unrealcv/version", "get_version", "Get the protocol version"),
    _r("vbatch", r"", "vbatch [n]", "vbatch", "Acknowledge that the next n requests form a batch"),
    _r("vget", r"/scene/name", "vget /scene/name", "get_scene_name", "Get the name of this scene"),
    _r("vget", r"/level/name", "vget /level/name", "get_level_name", "Get the current level name"),
    # objects
    _r("vget", r"/objects", "vget /objects", "get_objects", "Get the name of all objects"),
    _r("vget", _OBJ + r"/color", "vget /object/[name]/color", "get_object_color",
       "Get the labeling color of an object (used in the object mask)"),
    _r("vset", _OBJ + r"/color", "vset /object/[name]/color [r] [g] [b]", "set_object_color",
       "Set the labeling color of an object", True),
    _r("vget", _OBJ + r"/location", "vget /object/[name]/location", "get_object_location",
       "Get object location [x, y, z] (the centre of its bounds)"),
    _r("vget", _OBJ + r"/rotation", "vget /object/[name]/rotation", "get_object_rotation",
       "Get object rotation [pitch, yaw, roll] (geometry is baked: 0 0 0)"),
    _r("vget", _OBJ + r"/scale", "vget /object/[name]/scale", "get_object_scale",
       "Get object scale [x, y, z] (geometry is baked: 1 1 1)"),
    _r("vget", _OBJ + r"/bounds", "vget /object/[name]/bounds", "get_object_bounds",
       "Return the bounds in world coordinates, format is [minx, y, z, maxx, y, z]"),
    _r("vget", _OBJ + r"/mobility", "vget /object/[name]/mobility", "get_object_mobility",
       "Is the object static or movable? (always Static)"),
    _r("vget", _OBJ + r"/uclass_name", "vget /object/[name]/uclass_name", "get_object_uclass",
       "Get the UClass name of an object"),
    _r("vget", _OBJ + r"/vertex_location", "vget /object/[name]/vertex_location", "get_object_vertices",
       "Get the vertex locations of an object, one 'x y z' line each"),
    # static geometry: setting an object's current value is accepted (scripts re-assert poses, e.g.
    # UnrealCv_API.get_obj_size sets rotation 0 0 0 first); any change is not implemented. Not
    # listed by `vget /unrealcv/commands`, since most values are refused.
    _r("vset", _OBJ + r"/location", "vset /object/[name]/location [x] [y] [z]", "set_object_static",
       "Set object location: only its current value (scene geometry is static)"),
    _r("vset", _OBJ + r"/rotation", "vset /object/[name]/rotation [pitch] [yaw] [roll]", "set_object_static",
       "Set object rotation: only its current value 0 0 0 (scene geometry is static)"),
    _r("vset", _OBJ + r"/scale", "vset /object/[name]/scale [x] [y] [z]", "set_object_static",
       "Set object scale: only its current value 1 1 1 (scene geometry is static)"),
    _ni("vset", _OBJ + r"/show", "vset /object/[name]/show", "objects cannot be hidden or shown"),
    _ni("vset", _OBJ + r"/hide", "vset /object/[name]/hide", "objects cannot be hidden or shown"),
    _ni("vset", _OBJ + r"/destroy", "vset /object/[name]/destroy", "scene geometry is static"),
    _ni("vset", _OBJ + r"/name", "vset /object/[name]/name [new_name]", "object names are fixed"),
    _ni("vset", _OBJ + r"/material", "vset /object/[name]/material [slot] [path]", "no UE materials"),
    _ni("vget", _OBJ + r"/material", "vget /object/[name]/material", "no UE materials"),
    _ni("vset", r"/objects/spawn", "vset /objects/spawn [class] [name]", "no actors can be spawned"),
    _ni("vset", r"/objects/spawn_cube", "vset /objects/spawn_cube [name]", "no actors can be spawned"),
    # cameras
    _r("vget", r"/cameras", "vget /cameras", "get_cameras", "List all cameras"),
    _r("vset", r"/cameras/spawn", "vset /cameras/spawn", "spawn_camera",
       f"Spawn a new camera at camera 0's pose (at most {MAX_CAMERAS} cameras); replies its name", True),
    _r("vget", _CAM + r"/location", "vget /camera/[id]/location", "get_location", "Get camera location [x, y, z]"),
    _r("vset", _CAM + r"/location", "vset /camera/[id]/location [x] [y] [z]", "set_location",
       "Set camera location [x, y, z] (teleport)", True),
    _r("vget", _CAM + r"/rotation", "vget /camera/[id]/rotation", "get_rotation",
       "Get camera rotation [pitch, yaw, roll]"),
    _r("vset", _CAM + r"/rotation", "vset /camera/[id]/rotation [pitch] [yaw] [roll]", "set_rotation",
       "Set camera rotation [pitch, yaw, roll]", True),
    _r("vget", _CAM + r"/pose", "vget /camera/[id]/pose", "get_pose",
       "Get camera location and rotation [x, y, z, pitch, yaw, roll]"),
    _r("vset", _CAM + r"/pose", "vset /camera/[id]/pose [x] [y] [z] [pitch] [yaw] [roll]", "set_pose",
       "Teleport camera to location [x, y, z] and rotation [pitch, yaw, roll]", True),
    _r("vget", _CAM + r"/fov", "vget /camera/[id]/fov", "get_fov", "Get the horizontal field of view (degrees)"),
    _r("vset", _CAM + r"/fov", "vset /camera/[id]/fov [fov]", "set_fov",
       "Set the horizontal field of view (degrees)", True),
    _r("vget", _CAM + r"/horizontal_fieldofview", "vget /camera/[id]/horizontal_fieldofview", "get_fov",
       "Deprecated alias of vget /camera/[id]/fov"),
    _r("vset", _CAM + r"/horizontal_fieldofview", "vset /camera/[id]/horizontal_fieldofview [fov]", "set_fov",
       "Deprecated alias of vset /camera/[id]/fov", True),
    _r("vget", _CAM + r"/size", "vget /camera/[id]/size", "get_size", "Get camera film size [width, height]"),
    _r("vset", _CAM + r"/size", "vset /camera/[id]/size [width] [height]", "set_size",
       "Set camera film size [width, height]", True),
    _r("vset", _CAM + r"/moveto", "vset /camera/[id]/moveto [x] [y] [z]", "moveto",
       "Move camera 0 to location [x, y, z]; blocked by objects", True),
    _r("vset", _CAM + r"/projection_type", "vset /camera/[id]/projection_type [type]", "set_projection",
       "Set the projection type (perspective only)"),
    *_capture_routes(),
    _ni("vget", _CAM + r"/optical_flow", "vget /camera/[id]/optical_flow [fmt]", "no optical flow sensor"),
    _ni("vset", _CAM + r"/ortho_width", "vset /camera/[id]/ortho_width [width]", "perspective cameras only"),
    _ni("vset", _CAM + r"/(?:exposure_bias|exposure_method|auto_brightness|auto_speed|physical_exposure|"
                       r"focal|illumination|lit_source|reflection|motion_blur)",
        "vset /camera/[id]/[exposure_bias|focal|...] [args]", "no UE post-process settings"),
    _r("vget", r"/screenshot", ("vget /screenshot [fmt]", "vget /screenshot"), "screenshot",
       "Get a screenshot (camera 0, lit): png|bmp bytes or a file name inside the save folder"),
    _r("vget", r"/actor/location", "vget /actor/location", "get_actor_location",
       "Get the location of the player (camera 0)"),
    _r("vget", r"/actor/rotation", "vget /actor/rotation", "get_actor_rotation",
       "Get the rotation of the player (camera 0)"),
    # view mode, actions, console
    _r("vset", r"/viewmode", "vset /viewmode [mode]", "set_viewmode", "Set ViewMode to (lit, normal, depth, object_mask)"),
    _r("vget", r"/viewmode", "vget /viewmode", "get_viewmode", "Get current ViewMode"),
    _r("vset", r"/action/game/pause", "vset /action/game/pause", "pause", "Pause the game (scenes are static)"),
    _r("vset", r"/action/game/resume", "vset /action/game/resume", "resume", "Resume the game"),
    _r("vget", r"/action/game/is_paused", "vget /action/game/is_paused", "is_paused", "Get the pause status"),
    _r("vset", r"/action/eyes_distance", "vset /action/eyes_distance [distance]", "set_eyes_distance",
       "Set the distance (cm) of the right eye (camera 1) from camera 0, and attach camera 1 to it", True),
    _r("vset", r"/action/input/enable", "vset /action/input/enable", "input_toggle", "Enable input (no effect)"),
    _r("vset", r"/action/input/disable", "vset /action/input/disable", "input_toggle", "Disable input (no effect)"),
    _ni("vset", r"/action/game/level", "vset /action/game/level [level]", "the scene is fixed at start "
                                                                          "(start another `relic datagen serve --scene`)"),
    _ni("vset", r"/action/keyboard", "vset /action/keyboard [key] [duration]", "no game input"),
    _ni("vget", r"/persistent_level/id", "vget /persistent_level/id", "no UE level"),
    _ni("vget", r"/persistent_level/level_script_actor/id", "vget /persistent_level/level_script_actor/id",
        "no UE level"),
    _r("vrun", r"setres", "vrun setres [WxH]", "setres", "Set the size of every camera (e.g. setres 640x480w)", True),
    _r("vrun", r".*", "vrun [cmd]", "console",
       "Run a UE console command: frame-rate, time, quality and on-screen-message commands are accepted "
       "(no effect here); others are not implemented"),
    _ni("vexec", r".*", "vexec [object] [function] [args]", "no blueprints"),
    _ni("vbp", r".*", "vbp [object] [function] [args]", "no blueprints"),
)
_PARTIAL = ("set_object_static", "set_projection")  # work for some arguments only: not advertised
COMMAND_TEMPLATES: tuple[str, ...] = tuple(t for r in ROUTES if r.implemented and r.handler not in _PARTIAL
                                           for t in r.templates)
_VBATCH = next(r for r in ROUTES if r.verb == "vbatch")
_VERBS = ("vget", "vset", "vrun", "vexec", "vbp")


@dataclass
class ParsedCommand:
    route: Route
    match: dict
    args: list[str]
    text: str


def parse_command(text: str) -> ParsedCommand:
    """Find the route of one command string; raises CommandError for unknown commands."""
    tokens = text.split()
    if tokens[:1] == ["vbatch"]:
        return ParsedCommand(_VBATCH, {}, tokens[1:], text)
    if len(tokens) >= 2 and tokens[0] in _VERBS:
        verb, key, args = tokens[0], tokens[1], tokens[2:]
        if verb in ("vrun", "vexec", "vbp"):
            key, args = tokens[1], tokens[2:]
        for route in ROUTES:
            if route.verb == verb:
                m = route.pattern.fullmatch(key)
                if m:
                    return ParsedCommand(route, m.groupdict(), args, text)
    raise CommandError(f"{NO_HANDLER} '{_short(text.strip(), 200)}'")


def _short(s: str, n: int = 80) -> str:
    s = s.replace("\n", " ").replace("\r", " ")
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
            raise CommandError(f"not a finite number: '{_short(a, 30)}' ({what})")
        out.append(v)
    return out


def _fmt(values: Iterable[float]) -> str:
    return " ".join(f"{float(v):.3f}" for v in values)


@dataclass
class Camera:
    """One camera's state in UE units: location cm, rotator degrees, horizontal FOV, film size."""

    location: list
    rotation: list
    fov: float
    width: int
    height: int
    name: str
    follows: Optional[int] = None  # index of the camera it is attached to (stereo right eye)
    offset_cm: float = 0.0         # along that camera's right axis
    extra: dict = field(default_factory=dict)


class CommandDispatcher:
    """Executes UnrealCV commands against one backend (the backend renders whichever camera is asked).

    Not thread-safe: one server loop owns it. State (cameras, pause flag, view mode, object colours)
    lives as long as the dispatcher, so it survives client reconnections, as in the plugin.
    """

    def __init__(self, backend: CaptureBackend, port: int = 0, host: str = "127.0.0.1",
                 png_level: int = encoding.PNG_LEVEL, save: Optional[SaveFolder] = None,
                 eyes_distance_cm: float = DEFAULT_EYES_DISTANCE_CM):
        self.backend = backend
        self.save = save if save is not None else SaveFolder(None)
        self.png_level = int(png_level)
        self.port, self.host = port, host
        self.client_connected = False
        info = backend.scene_info()
        self.scene_id = str(info.get("scene_id", "scene"))
        self.level_name = str(info.get("level", info.get("family", self.scene_id)))
        self._scene = getattr(backend, "scene", None)  # geometry for object bounds (embedded backend)
        names = list(backend.objects())
        self._proto_names = _protocol_names(names)
        self._name_to_index = {n: i for i, n in enumerate(self._proto_names)}
        self._lut = encoding.instance_palette(len(self._proto_names)).copy()
        self._object_geometry: dict[int, np.ndarray] = {}
        loc, rot = cv.c2w_to_ue_pose(backend.get_pose())
        w, h = backend.resolution()
        fov = float(backend.fov())
        self.cameras: list[Camera] = [
            Camera([float(v) for v in loc], [float(v) for v in rot], fov, int(w), int(h), "relic_camera_0"),
            Camera([float(v) for v in loc], [float(v) for v in rot], fov, int(w), int(h), "relic_camera_1",
                   follows=0, offset_cm=float(eyes_distance_cm)),
        ]
        self._resolve(1)
        self.viewmode = "lit"
        self.paused = False
        self._frames: dict[int, tuple[Frame, set]] = {}
        self._applied: Optional[tuple] = None  # (w, h, fov) last pushed to the backend

    # ------------------------------------------------------------------ compatibility shims
    @property
    def location(self) -> list:
        return self.cameras[0].location

    @property
    def rotation(self) -> list:
        return self.cameras[0].rotation

    def set_save_folder(self, save: SaveFolder) -> None:
        self.save = save
        self.write_config()

    def write_config(self) -> None:
        """The plugin-style config file in the save folder (its folder is where saved files go)."""
        if self.save.enabled:
            c = self.cameras[0]
            self.save.write_config(
                "[UnrealCV.Core]\n"
                f"Port={self.port}\nWidth={c.width}\nHeight={c.height}\nFOV={c.fov:.6f}\n"
                f"EnableInput=False\nEnableRightEye=True\n"
                "; written by relic-embedded (relic datagen serve); files saved by clients go in this folder\n")

    # ------------------------------------------------------------------ dispatch
    def execute(self, text: str, upcoming: Iterable[str] = ()) -> bytes | str:
        """Run one command; returns the reply body. Never raises for bad input.

        `upcoming`: commands already received after this one (used to render several capture kinds
        in one pass). Only their text is inspected.
        """
        try:
            cmd = parse_command(text)
            if not cmd.route.implemented:
                why = cmd.route.help[len("(not implemented here: "):-1]
                raise NotImplementedCommand(f"{NOT_IMPLEMENTED}: {why} in {SERVER_NAME}")
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
        self._frames = {}

    def _camera(self, cmd: ParsedCommand) -> int:
        cam = cmd.match.get("cam", "0")
        if not cam.isdigit() or int(cam) >= len(self.cameras):
            raise CommandError(f"Invalid camera id '{_short(cam, 20)}': camera {_short(cam, 20)} does not exist "
                               f"(cameras 0-{len(self.cameras) - 1}, see vget /cameras)")
        return int(cam)

    def _no_args(self, cmd: ParsedCommand) -> None:
        if cmd.args:
            raise CommandError(f"'{cmd.route.template}' takes no arguments")

    def _resolve(self, i: int) -> Camera:
        """Camera i with an attached camera's pose brought up to date."""
        c = self.cameras[i]
        if c.follows is not None:
            p = self._resolve(c.follows)
            _, right, _ = cv.rotator_axes(*p.rotation)
            c.location = [float(a + c.offset_cm * r) for a, r in zip(p.location, right)]
            c.rotation = list(p.rotation)
        return c

    def _object(self, cmd: ParsedCommand) -> int:
        name = cmd.match["obj"]
        if name not in self._name_to_index:
            raise CommandError(f"Can not find object '{_short(name, 60)}' (see vget /objects)")
        return self._name_to_index[name]

    # ------------------------------------------------------------------ plugin
    def get_status(self, cmd, upcoming):
        c = self.cameras[0]
        config = str(self.save.config_file) if self.save.enabled else "(none: saving is disabled, --no-save)"
        save = str(self.save.root) if self.save.enabled else "(disabled)"
        return "\n".join([
            "Is Listening", "Client Connected" if self.client_connected else "No Client Connected",
            str(self.port), "Configuration", f"Config file: {config}", f"Port: {self.port}",
            f"Width: {c.width}", f"Height: {c.height}", f"FOV: {c.fov:.6f}",
            "EnableInput: false", "EnableRightEye: true", f"Server: {SERVER_NAME} {self.scene_id}",
            f"Save folder: {save}", f"Cameras: {len(self.cameras)}", ""])

    def get_help(self, cmd, upcoming):
        lines = []
        for r in ROUTES:
            for t in r.templates:
                lines += [t, r.help]
        return "\n".join(lines) + "\n"

    def get_commands(self, cmd, upcoming):
        return "\n".join(COMMAND_TEMPLATES)

    def echo(self, cmd, upcoming):
        if len(cmd.args) != 1:  # the plugin's "[str]" is one word
            raise CommandError(f"{NO_HANDLER} '{_short(cmd.text.strip(), 200)}'")
        return cmd.args[0]

    def get_version(self, cmd, upcoming):
        return PROTOCOL_VERSION

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

    # ------------------------------------------------------------------ objects
    def get_objects(self, cmd, upcoming):
        return " ".join(self._proto_names)

    def get_object_color(self, cmd, upcoming):
        r, g, b = (int(v) for v in self._lut[self._object(cmd) + 1])
        return f"(R={r},G={g},B={b},A=255)"

    def set_object_color(self, cmd, upcoming):
        i = self._object(cmd)
        if len(cmd.args) != 3 or not all(a.isdigit() and int(a) <= 255 for a in cmd.args):
            raise CommandError("usage: vset /object/[name]/color R G B (integers 0-255)")
        self._lut[i + 1] = [int(a) for a in cmd.args]
        return "ok"

    def _vertices_ue(self, i: int) -> np.ndarray:
        """(k, 3) float64 UE-frame (cm) vertices of object i's triangles."""
        if i not in self._object_geometry:
            s = self._scene
            if s is None or getattr(s, "tri_object", None) is None or s.vertices is None:
                raise NotImplementedCommand(f"{NOT_IMPLEMENTED}: this backend has no object geometry")
            tris = s.triangles[s.tri_object == i]
            idx = np.unique(tris.reshape(-1))
            self._object_geometry[i] = cv.ours_point_to_ue(s.vertices[idx].astype(np.float64))
        return self._object_geometry[i]

    def _bounds(self, cmd) -> tuple[np.ndarray, np.ndarray]:
        v = self._vertices_ue(self._object(cmd))
        if len(v) == 0:
            raise CommandError(f"object '{cmd.match['obj']}' has no geometry")
        return v.min(0), v.max(0)

    def get_object_location(self, cmd, upcoming):
        lo, hi = self._bounds(cmd)
        return _fmt((lo + hi) / 2.0)

    def get_object_rotation(self, cmd, upcoming):
        self._object(cmd)
        return _fmt((0.0, 0.0, 0.0))

    def get_object_scale(self, cmd, upcoming):
        self._object(cmd)
        return _fmt((1.0, 1.0, 1.0))

    def get_object_bounds(self, cmd, upcoming):
        lo, hi = self._bounds(cmd)
        return " ".join(f"{float(v):.2f}" for v in (*lo, *hi))

    def set_object_static(self, cmd, upcoming):
        what = cmd.route.template.split("/")[3].split()[0]
        current = {"location": None, "rotation": (0.0, 0.0, 0.0), "scale": (1.0, 1.0, 1.0)}[what]
        if current is None:
            lo, hi = self._bounds(cmd)
            current = (lo + hi) / 2.0
        else:
            self._object(cmd)
        v = _floats(cmd.args, 3, f"{what} x y z" if what != "rotation" else "pitch yaw roll")
        if max(abs(a - b) for a, b in zip(v, current)) <= 1e-3 + 1e-6 * max(abs(b) for b in current):
            return "ok"
        raise NotImplementedCommand(f"{NOT_IMPLEMENTED}: scene geometry is static in {SERVER_NAME} (the {what} of "
                                    f"'{cmd.match['obj']}' stays {_fmt(current)})")

    def get_object_mobility(self, cmd, upcoming):
        self._object(cmd)
        return "Static"

    def get_object_uclass(self, cmd, upcoming):
        self._object(cmd)
        return "StaticMeshActor"

    def get_object_vertices(self, cmd, upcoming):
        v = self._vertices_ue(self._object(cmd))
        return "".join(f"{x:.5f}     {y:.5f}     {z:.5f}\n" for x, y, z in v)

    # ------------------------------------------------------------------ cameras
    def get_cameras(self, cmd, upcoming):
        return " ".join(c.name for c in self.cameras)

    def spawn_camera(self, cmd, upcoming):
        self._no_args(cmd)
        if len(self.cameras) >= MAX_CAMERAS:
            raise CommandError(f"at most {MAX_CAMERAS} cameras")
        c0 = self._resolve(0)
        c = Camera(list(c0.location), list(c0.rotation), c0.fov, c0.width, c0.height,
                   f"relic_camera_{len(self.cameras)}")
        self.cameras.append(c)
        return c.name

    def get_location(self, cmd, upcoming):
        return _fmt(self._resolve(self._camera(cmd)).location)

    def set_location(self, cmd, upcoming):
        i = self._camera(cmd)
        c = self._resolve(i)
        c.location = self._coords(cmd.args, "x y z in cm")
        c.follows = None
        return "ok"

    def get_rotation(self, cmd, upcoming):
        return _fmt(self._resolve(self._camera(cmd)).rotation)

    def set_rotation(self, cmd, upcoming):
        i = self._camera(cmd)
        c = self._resolve(i)
        c.rotation = _floats(cmd.args, 3, "pitch yaw roll in degrees")
        c.follows = None
        return "ok"

    def get_pose(self, cmd, upcoming):
        c = self._resolve(self._camera(cmd))
        return _fmt(c.location + c.rotation)

    def set_pose(self, cmd, upcoming):
        i = self._camera(cmd)
        v = _floats(cmd.args, 6, "x y z pitch yaw roll")
        c = self.cameras[i]
        c.location = self._coords([str(x) for x in v[:3]], "x y z in cm")
        c.rotation = v[3:]
        c.follows = None
        return "ok"

    def get_actor_location(self, cmd, upcoming):
        return _fmt(self.cameras[0].location)

    def get_actor_rotation(self, cmd, upcoming):
        return _fmt(self.cameras[0].rotation)

    def _coords(self, args, what):
        v = _floats(args, 3, what)
        if max(abs(x) for x in v) > MAX_COORD_CM:
            raise CommandError(f"coordinates beyond +-{MAX_COORD_CM:g} cm")
        return v

    def get_fov(self, cmd, upcoming):
        return f"{self.cameras[self._camera(cmd)].fov:.3f}"

    def set_fov(self, cmd, upcoming):
        i = self._camera(cmd)
        (fov,) = _floats(cmd.args, 1, "horizontal fov in degrees")
        if not 0.0 < fov < 180.0:
            raise CommandError(f"fov must be in (0, 180) degrees, got {fov:g}")
        self.cameras[i].fov = fov
        return "ok"

    def get_size(self, cmd, upcoming):
        c = self.cameras[self._camera(cmd)]
        return f"{c.width} {c.height}"

    def set_size(self, cmd, upcoming):
        i = self._camera(cmd)
        if len(cmd.args) != 2 or not all(a.isdigit() for a in cmd.args):
            raise CommandError("usage: vset /camera/[id]/size WIDTH HEIGHT (positive integers)")
        w, h = self._check_size(int(cmd.args[0]), int(cmd.args[1]))
        self.cameras[i].width, self.cameras[i].height = w, h
        return "ok"

    def setres(self, cmd, upcoming):
        m = re.fullmatch(r"(\d{1,6})x(\d{1,6})([wf]?)", cmd.args[0]) if len(cmd.args) == 1 else None
        if not m:
            raise CommandError("usage: vrun setres WxH[w|f] (e.g. setres 640x480w)")
        w, h = self._check_size(int(m.group(1)), int(m.group(2)))
        for c in self.cameras:
            c.width, c.height = w, h
        return "ok"

    @staticmethod
    def _check_size(w: int, h: int) -> tuple[int, int]:
        if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE and w * h <= MAX_PIXELS):
            raise CommandError(f"size {w}x{h} out of range (sides 1..{MAX_SIDE}, at most {MAX_PIXELS} pixels)")
        return w, h

    def set_projection(self, cmd, upcoming):
        self._camera(cmd)
        if len(cmd.args) == 1 and cmd.args[0].lower() == "perspective":
            return "ok"
        if len(cmd.args) == 1 and cmd.args[0].lower() == "orthographic":
            raise NotImplementedCommand(f"{NOT_IMPLEMENTED}: orthographic projection in {SERVER_NAME}")
        raise CommandError(f"Can not support camera mode {_short(' '.join(cmd.args), 30)}, available options "
                           "are perspective and orthographic")

    def moveto(self, cmd, upcoming):
        if cmd.match.get("cam", "0") != "0":
            raise CommandError("MoveTo only supports the player camera with id 0")
        target = self._coords(cmd.args, "x y z in cm")
        c = self.cameras[0]
        self._apply(0)
        reached = self.backend.move_to(cv.ue_point_to_ours(target))
        c.location = [float(v) for v in cv.ours_point_to_ue(reached)]
        return "ok"

    def set_eyes_distance(self, cmd, upcoming):
        (d,) = _floats(cmd.args, 1, "eye distance in cm")
        if abs(d) > MAX_COORD_CM:
            raise CommandError(f"eye distance beyond +-{MAX_COORD_CM:g} cm")
        c1 = self.cameras[1]
        c1.follows, c1.offset_cm = 0, d
        self._resolve(1)
        return "ok"

    # ------------------------------------------------------------------ capture
    def capture(self, cmd, upcoming):
        i = self._camera(cmd)
        view = cmd.route.template.split("/")[3].split()[0]
        if len(cmd.args) > 1:
            raise CommandError(f"usage: vget /camera/[id]/{view} [{'npy' if view in DEPTH_VIEWS else 'png|bmp'} "
                               "or a file name]")
        return self._capture(i, view, cmd.args[0] if cmd.args else None, upcoming)

    def screenshot(self, cmd, upcoming):
        if len(cmd.args) > 1:
            raise CommandError("usage: vget /screenshot [png|bmp or a file name]")
        return self._capture(0, "lit", cmd.args[0] if cmd.args else None, upcoming)

    def _capture(self, i: int, view: str, arg: Optional[str], upcoming):
        if arg is None:  # plugin: save under a generated name and reply the path
            if not self.save.enabled:
                raise CommandError("saving files is disabled on this server (--no-save); ask for the bytes "
                                   f"instead, e.g. vget /camera/{i}/{view} {'npy' if view in DEPTH_VIEWS else 'png'}")
            arg = self.save.next_name("npy" if view in DEPTH_VIEWS else "png")
        fmt, path = _capture_format(view, arg)
        kind = VIEW_KINDS[view]
        frame = self._frame_with(i, kind, upcoming)
        data = self._encode(frame, view, fmt)
        if path is None:
            return data
        try:
            return str(self.save.save(path, data))
        except SaveRefused as e:
            raise CommandError(str(e)) from None

    def _apply(self, i: int) -> None:
        """Put camera i's state on the backend."""
        c = self._resolve(i)
        state = (c.width, c.height, c.fov)
        if self._applied != state:
            if self.backend.resolution() != (c.width, c.height):
                self.backend.set_resolution(c.width, c.height)
            if self.backend.fov() != c.fov:
                self.backend.set_fov(c.fov)
            self._applied = state
        self.backend.set_pose(cv.ue_pose_to_c2w(c.location, c.rotation))

    def _frame_with(self, i: int, kind: str, upcoming: Iterable[str]) -> Frame:
        cached = self._frames.get(i)
        if cached is not None and kind in cached[1]:
            return cached[0]
        # depth comes with the ray cast every kind needs, so it is always rendered alongside
        kinds = {kind, "depth"} | self._kinds_ahead(upcoming, i)
        self._apply(i)
        frame = self.backend.capture(tuple(k for k in ("rgb", "depth", "normal", "mask") if k in kinds))
        self._frames[i] = (frame, kinds)
        return frame

    @staticmethod
    def _kinds_ahead(upcoming: Iterable[str], cam: int) -> set[str]:
        """Capture kinds of camera `cam` requested by already-received commands before the next state change."""
        kinds: set[str] = set()
        for text in upcoming:
            try:
                nxt = parse_command(text)
            except CommandError:
                continue
            if nxt.route.changes_state:
                break
            if nxt.route.handler == "capture" and nxt.match.get("cam") == str(cam):
                kinds.add(VIEW_KINDS[nxt.route.template.split("/")[3].split()[0]])
        return kinds

    def _encode(self, frame: Frame, view: str, fmt: str) -> bytes:
        kind = VIEW_KINDS[view]
        if kind == "depth":
            depth = cv.ours_depth_to_ue(frame.depth)
            if view == "vis_depth":  # distance along each pixel's ray
                depth = _planar_to_ray(depth, frame.K)
            return encoding.encode_npy(depth)
        if kind == "rgb":
            rgb = frame.rgb
        elif kind == "mask":
            rgb = self._lut[np.clip(frame.mask, -1, len(self._proto_names) - 1) + 1]
        else:  # normal: our world frame -> UE world frame (a direction: flip Y, no scaling)
            rgb = encoding.normals_to_rgb(cv.ours_direction_to_ue(frame.normal))
        return encoding.encode_png(rgb, self.png_level) if fmt == "png" else encoding.encode_bmp(rgb)

    # ------------------------------------------------------------------ misc
    def set_viewmode(self, cmd, upcoming):
        if len(cmd.args) != 1 or cmd.args[0] not in VIEWMODES:
            raise CommandError(f"usage: vset /viewmode {{{'|'.join(VIEWMODES)}}}")
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

    def input_toggle(self, cmd, upcoming):
        self._no_args(cmd)
        return "ok"  # there is no game input to enable or disable

    def console(self, cmd, upcoming):
        name = cmd.text.split()[1]
        if NO_EFFECT_CONSOLE.fullmatch(name):
            return "ok"
        raise NotImplementedCommand(f"{NOT_IMPLEMENTED}: console command '{_short(name, 40)}' in {SERVER_NAME} "
                                    "(only setres, and frame-rate/time/quality/stat commands, which have no effect)")


def _planar_to_ray(depth_cm: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Planar depth -> distance along each pixel's ray (pixel centres), same units; far stays far."""
    h, w = depth_cm.shape
    x = (np.arange(w, dtype=np.float64) + 0.5 - K[0, 2]) / K[0, 0]
    y = (np.arange(h, dtype=np.float64) + 0.5 - K[1, 2]) / K[1, 1]
    scale = np.sqrt(1.0 + x[None, :] ** 2 + y[:, None] ** 2).astype(np.float32)
    out = depth_cm * scale
    out[depth_cm >= np.float32(1e6)] = np.float32(1e6)
    return out.astype(np.float32)


def _capture_format(view: str, arg: str) -> tuple[str, Optional[str]]:
    """(format, file path or None) of a capture argument."""
    allowed = ("npy",) if view in DEPTH_VIEWS else IMAGE_FORMATS
    if arg in allowed:
        return arg, None
    ext = os.path.splitext(arg)[1].lstrip(".").lower()
    if ext in allowed:
        return ext, arg
    raise CommandError(f"Invalid filename type, filename {_short(arg, 60)}: {view} supports {'|'.join(allowed)} "
                       "(bytes) or a file name ending in one")


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
