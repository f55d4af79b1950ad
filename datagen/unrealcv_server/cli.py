"""`relic datagen serve`: run an UnrealCV-protocol TCP server over the embedded renderer.

Example: ``relic datagen serve --scene scenes/apartment_3.json --port 9000`` then connect any
UnrealCV client (``unrealcv.Client(("127.0.0.1", 9000))``) or
``datagen.backends.unrealcv_client.UnrealCVBackend(port=9000)``. ``--port 0`` picks a free port;
the bound address is printed on stdout as ``listening on HOST:PORT``. Ctrl-C / SIGTERM stop it.
"""
from __future__ import annotations

import logging
import signal
import sys


def add_arguments(p) -> None:
    p.add_argument("--scene", required=True, help="scene file (JSON) written by `relic datagen scene`")
    p.add_argument("--port", type=int, default=9000, help="TCP port (default 9000, the UnrealCV default; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--width", type=int, default=640, help="capture width in pixels (default 640, as the plugin)")
    p.add_argument("--height", type=int, default=480, help="capture height in pixels (default 480)")
    p.add_argument("--fov", type=float, default=90.0, help="horizontal field of view in degrees (default 90)")
    p.add_argument("--no-shadows", action="store_true", help="render without cast shadows (faster)")
    p.add_argument("--queue-wait", type=float, default=5.0,
                   help="seconds a second client waits for the first to leave before it is refused (default 5)")
    p.add_argument("--png-level", type=int, default=0, choices=range(10), metavar="0-9",
                   help="zlib level of png replies: 0 = stored (fastest, default; right for loopback), "
                        "higher = smaller over a slow network")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log level; debug logs every request (default info)")


def run(args) -> int:
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pathlib import Path

    if not Path(args.scene).is_file():
        raise FileNotFoundError(f"scene file {args.scene} not found; make one with "
                                "`relic datagen scene --family F --seed N --out FILE`")
    if not (0 <= args.port <= 65535):
        raise ValueError(f"--port {args.port} is not a TCP port (0..65535)")
    if args.width <= 0 or args.height <= 0:
        raise ValueError(f"--width/--height must be positive, got {args.width}x{args.height}")
    if not 0.0 < args.fov < 180.0:
        raise ValueError(f"--fov must be in (0, 180) degrees, got {args.fov}")
    from datagen.backends.embedded import EmbeddedBackend
    from datagen.scenes.library import load_scene
    from datagen.unrealcv_server.server import UnrealCVServer

    scene = load_scene(args.scene)
    backend = EmbeddedBackend(scene, width=args.width, height=args.height, fov=args.fov,
                              shadows=not args.no_shadows)
    server = UnrealCVServer(backend, host=args.host, port=args.port, queue_wait=args.queue_wait,
                            png_level=args.png_level)
    host, port = server.bind()
    if host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger(__name__).warning(
            "listening on %s: reachable from other machines; any client can move the camera and save "
            "capture files on this machine (vget ... <file>), as with the UnrealCV plugin", host)

    def _stop(signum, frame):
        logging.getLogger(__name__).info("signal %d: shutting down", signum)
        server.request_stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(f"listening on {host}:{port} (scene {server.dispatcher.scene_id}, "
          f"{args.width}x{args.height}, fov {args.fov:g}); Ctrl-C to stop", flush=True)
    server.serve_forever()
    return 0
