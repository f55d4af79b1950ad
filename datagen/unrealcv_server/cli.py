"""`relic datagen serve`: run an UnrealCV-protocol TCP server over the embedded renderer.

Example: ``relic datagen serve --scene scenes/apartment_3.json --port 9000`` then connect any
UnrealCV client (``unrealcv.Client(("127.0.0.1", 9000))``) or
``datagen.backends.unrealcv_client.UnrealCVBackend(port=9000)``. ``--port 0`` picks a free port;
the bound address is printed on stdout as ``listening on HOST:PORT``. Ctrl-C / SIGTERM stop it.

Files a client asks to save (``vget /camera/0/lit name.png``) are written only inside the save
folder (``--save-dir``, default ``runs/serve/<scene>-<port>``), within ``--save-max-file`` per file
and ``--save-quota`` in all; ``--no-save`` refuses every save.
"""
from __future__ import annotations

import logging
import signal
import sys

from datagen.cli_common import (
    byte_size, CliError, host, int_at_least, nonnegative_float, port_or_zero, positive_float, positive_int,
)
from datagen.scenes.library import load_scene
from datagen.unrealcv_server import server as S
from datagen.unrealcv_server.commands import MAX_PIXELS, MAX_SIDE
from datagen.unrealcv_server.server import UnrealCVServer


def add_arguments(p) -> None:
    p.add_argument("--scene", required=True, help="scene file (JSON) written by `relic datagen scene`")
    p.add_argument("--port", type=port_or_zero, default=9000,
                   help="TCP port (0 = any free port; 9000 is UnrealCV's usual port)")
    p.add_argument("--host", type=host, default="127.0.0.1",
                   help="address to bind (127.0.0.1: this machine only; 0.0.0.0: every interface)")
    p.add_argument("--width", type=positive_int, default=640, help="capture width in pixels (the plugin's default)")
    p.add_argument("--height", type=positive_int, default=480, help="capture height in pixels")
    p.add_argument("--fov", type=positive_float, default=90.0, help="horizontal field of view in degrees, in (0, 180)")
    p.add_argument("--no-shadows", action="store_true", help="render without cast shadows (faster)")
    p.add_argument("--eyes-distance", type=float, default=40.0, metavar="CM",
                   help="camera 1 (the right eye of a stereo pair) follows camera 0 at this distance along its "
                        "right axis (the plugin's right-eye offset); clients change it with "
                        "`vset /action/eyes_distance CM`")
    p.add_argument("--save-dir", default=None,
                   help="the only folder where clients' `vget ... FILE` captures are written (created at start; "
                        "default: runs/serve/SCENE-PORT)")
    p.add_argument("--save-quota", type=byte_size, default="1G", metavar="SIZE",
                   help="total size of the files in the save folder, e.g. 500M, 2G")
    p.add_argument("--save-max-file", type=byte_size, default="64M", metavar="SIZE",
                   help="largest single saved file")
    p.add_argument("--no-save", action="store_true",
                   help="refuse every request to save a file on the server (captures still return bytes)")
    p.add_argument("--idle-timeout", type=positive_float, default=S.DEFAULT_IDLE_TIMEOUT, metavar="SECONDS",
                   help="while another client waits, drop the connected one after this long without progress "
                        "(silent, stalled mid-message or not reading); a lone client may idle forever")
    p.add_argument("--queue-wait", type=nonnegative_float, default=S.DEFAULT_QUEUE_WAIT, metavar="SECONDS",
                   help="how long a second client waits for its turn before it is refused")
    p.add_argument("--max-waiting", type=int_at_least(0), default=S.DEFAULT_MAX_WAITING, metavar="N",
                   help="clients allowed to wait at once; more are refused at once")
    p.add_argument("--png-level", type=int, default=0, choices=range(10), metavar="0-9",
                   help="zlib level of png replies: 0 = stored (fastest; right for loopback), "
                        "higher = smaller over a slow network")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log level; debug logs every request")


def run(args) -> int:
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pathlib import Path

    scene_path = Path(args.scene)
    if scene_path.is_dir():
        raise CliError(f"--scene {args.scene} is a folder; give a scene file (JSON) made by "
                       "`relic datagen scene --family F --seed N --out FILE`")
    if not scene_path.is_file():
        raise CliError(f"scene file {args.scene} not found; make one with "
                       "`relic datagen scene --family F --seed N --out FILE`")
    if not 0.0 < args.fov < 180.0:
        raise CliError(f"--fov must be in (0, 180) degrees, got {args.fov:g}")

    if args.width > MAX_SIDE or args.height > MAX_SIDE or args.width * args.height > MAX_PIXELS:
        raise CliError(f"--width/--height {args.width}x{args.height} too large (sides up to {MAX_SIDE}, "
                       f"at most {MAX_PIXELS} pixels)")
    from datagen.backends.embedded import EmbeddedBackend  # deferred: it imports open3d and numba

    scene = load_scene(args.scene)
    backend = EmbeddedBackend(scene, width=args.width, height=args.height, fov=args.fov,
                              shadows=not args.no_shadows)
    server = UnrealCVServer(backend, host=args.host, port=args.port, queue_wait=args.queue_wait,
                            idle_timeout=args.idle_timeout, max_waiting=args.max_waiting,
                            png_level=args.png_level, save_dir=None, eyes_distance_cm=args.eyes_distance)
    host, port = server.bind()
    if not args.no_save:
        save_dir = args.save_dir or str(Path("runs") / "serve" / f"{server.dispatcher.scene_id}-{port}")
        server.enable_saving(save_dir, quota=args.save_quota, max_file=args.save_max_file)
    log = logging.getLogger(__name__)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: reachable from other machines; any client can move the camera and, "
                    "unless --no-save, write capture files inside %s (up to --save-quota)", host,
                    server.save.root if server.save.enabled else "nothing")

    def _stop(signum, frame):
        log.info("signal %d: shutting down", signum)
        server.request_stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    saving = f"saves in {server.save.root}" if server.save.enabled else "saving disabled"
    print(f"listening on {host}:{port} (scene {server.dispatcher.scene_id}, "
          f"{args.width}x{args.height}, fov {args.fov:g}; {saving}); Ctrl-C to stop", flush=True)
    server.serve_forever()
    return 0
