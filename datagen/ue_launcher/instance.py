"""One UnrealCV server process: a packaged UE binary, our embedded server, or an attached endpoint.

A `UEInstance` owns (or attaches to) one server on one TCP port.

* `start()` launches the process (its own process group, output to ``<log_dir>/server-<port>.log``)
  and blocks until the UnrealCV server answers: greeting ``connected ...`` and a reply to
  ``vget /unrealcv/status`` (framed with the `unrealcv` client's own ``SocketMessage``; see
  :func:`probe_unrealcv`). A command that exits during start-up, a busy port and a server that
  never answers each raise :class:`LaunchError` saying what to fix.
* `is_alive()` is cheap and safe while a capture client is connected (UnrealCV serves ONE client at
  a time, so a protocol probe would be refused): the process runs and its port accepts TCP.
* `ensure_alive(probe=...)` restarts a dead server (or, with ``probe=True``, one that accepts TCP but
  does not answer the protocol: hung). Attached endpoints are never restarted, only waited for.
* `kill()` SIGKILLs the process group (crash tests); `stop()` SIGTERMs it, then SIGKILLs.

The launched command is a template with ``{port}``, ``{width}``, ``{height}``, ``{map}``
placeholders, so the same code drives a UE build (see :func:`ue_command`) and, in tests and on
machines without Unreal, the embedded protocol server
(``relic datagen serve --scene FILE --port {port} --width {width} --height {height}``).
"""
from __future__ import annotations

import logging
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional, Sequence

from datagen.atomic import atomic_write_text

log = logging.getLogger(__name__)

PLACEHOLDERS = ("port", "width", "height", "map")


class LaunchError(RuntimeError):
    """A server could not be started, is not reachable, or did not answer in time."""


def ue_command(binary: str | Path, map_name: str | None = None, *, offscreen: bool = True,
               opengl: bool = False, gpu: int | None = None, extra: Sequence[str] = ()) -> list[str]:
    """Command template (list of strings with placeholders) for a packaged UE binary with UnrealCV.

    ``-cvport={port}`` selects UnrealCV's port (overrides unrealcv.ini's Port), ``-ResX/-ResY`` the
    window/back-buffer size in pixels, ``-RenderOffScreen`` renders without a window (Linux Vulkan;
    no X server needed), ``-graphicsadapter=N`` picks the GPU. ``map_name`` is a UE map path such as
    ``/Game/Maps/CaptureLevel`` (empty: the project's GameDefaultMap).
    """
    cmd = [str(binary)]
    if map_name:
        cmd.append(str(map_name))
    cmd += ["-cvport={port}", "-ResX={width}", "-ResY={height}", "-windowed", "-nosound", "-unattended"]
    if offscreen:
        cmd.append("-RenderOffScreen")
    if opengl:
        cmd.append("-opengl4")
    if gpu is not None:
        cmd.append(f"-graphicsadapter={int(gpu)}")
    return cmd + list(extra)


def write_unrealcv_ini(folder: str | Path, port: int, width: int, height: int, fov: float = 90.0) -> Path:
    """Write ``unrealcv.ini`` ([UnrealCV.Core] Port/Width/Height/FOV in px and degrees) into `folder`
    atomically; the plugin reads it from the packaged executable's folder."""
    text = (f"[UnrealCV.Core]\nPort={int(port)}\nWidth={int(width)}\nHeight={int(height)}\n"
            f"FOV={float(fov):f}\nEnableInput=False\nEnableRightEye=False\n")
    return atomic_write_text(Path(folder) / "unrealcv.ini", text)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (a TCP bind succeeds; TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
            return True
        except OSError:
            return False


def port_accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a TCP connection to host:port succeeds (something listens there)."""
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def probe_unrealcv(host: str, port: int, timeout: float = 2.0) -> str:
    """One UnrealCV handshake on a fresh connection, with `timeout` seconds per step.

    Returns "ready" (greeting ``connected...`` and ``vget /unrealcv/status`` answered),
    "busy" (the server sent a framed ``error ...`` instead of the greeting: another client holds
    it), "closed" (nothing listens, or the connection was dropped), or "silent" (a listener that
    does not speak UnrealCV within `timeout`: a foreign program or a server still loading).
    Framing is the `unrealcv` client's ``SocketMessage`` (magic, uint32 size, payload).
    """
    from unrealcv import SocketMessage

    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError:
        return "closed"
    try:
        sock.settimeout(timeout)
        try:
            greeting = SocketMessage.ReceivePayload(sock)
        except OSError:
            greeting = None
        if greeting is None:
            # ReceivePayload swallows a timeout on the first bytes: tell silence from a close
            try:
                sock.setblocking(False)
                data = sock.recv(1)
                return "closed" if data == b"" else "silent"
            except BlockingIOError:
                return "silent"
            except OSError:
                return "closed"
        if greeting.startswith(b"error"):
            return "busy"
        if not greeting.startswith(b"connected"):
            return "silent"
        if not SocketMessage.WrapAndSendPayload(sock, b"0:vget /unrealcv/status"):
            return "closed"
        try:
            reply = SocketMessage.ReceivePayload(sock)
        except OSError:
            reply = None
        return "ready" if reply is not None and reply.startswith(b"0:") else "silent"
    finally:
        sock.close()


def _log_tail(path: Optional[Path], n: int = 15) -> str:
    if path is None or not path.is_file():
        return ""
    try:
        lines = path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return ""
    return ("\n  last lines of " + str(path) + ":\n    " + "\n    ".join(lines)) if lines else ""


class UEInstance:
    """One UnrealCV endpoint, launched from `command` (a template) or attached (`command=None`).

    command: list of strings or one shell-like string with ``{port} {width} {height} {map}``.
    port/host: where the server listens; width/height: capture size in pixels; map_name: UE map.
    workdir: the process's working directory; log_dir: where ``server-<port>.log`` goes (None:
    output discarded); startup_timeout: seconds to wait for the first answer; env: process env.
    """

    def __init__(self, command: Optional[Sequence[str] | str], *, port: int, host: str = "127.0.0.1",
                 width: int = 640, height: int = 480, map_name: str = "", workdir: str | Path | None = None,
                 log_dir: str | Path | None = None, startup_timeout: float = 120.0, env: dict | None = None,
                 probe_timeout: float = 2.0):
        if isinstance(command, str):
            command = shlex.split(command)
        self.template = list(command) if command else None
        if self.template is not None:
            _check_template(self.template)
        self.host, self.port = host, int(port)
        self.width, self.height, self.map_name = int(width), int(height), map_name or ""
        self.workdir = Path(workdir) if workdir else None
        self.log_dir = Path(log_dir) if log_dir else None
        self.startup_timeout = float(startup_timeout)
        self.probe_timeout = float(probe_timeout)
        self.env = env
        self.proc: Optional[subprocess.Popen] = None
        self.restarts = 0
        self._log_file = None

    # -------------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def attached(self) -> bool:
        return self.template is None

    @property
    def log_path(self) -> Optional[Path]:
        return self.log_dir / f"server-{self.port}.log" if self.log_dir else None

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:
        """The launch command with placeholders filled in."""
        if self.template is None:
            raise LaunchError(f"{self.endpoint} is attached, not launched: there is no command")
        fields = {"port": self.port, "width": self.width, "height": self.height, "map": self.map_name}
        return [part.format(**fields) for part in self.template]

    def start(self) -> "UEInstance":
        """Launch (unless attached or already running) and wait until UnrealCV answers."""
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> "UEInstance":
        """Start the process without waiting for it to answer (no-op when attached or running)."""
        if self.attached or (self.proc is not None and self.proc.poll() is None):
            return self
        if not port_is_free(self.port, self.host):
            raise LaunchError(f"port {self.port} on {self.host} is already in use: stop what listens there, "
                              f"choose another --base-port, or attach to it (--endpoints {self.endpoint})")
        cmd = self.command()
        out = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")
            self._log_file.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} launching: "
                                 f"{' '.join(shlex.quote(c) for c in cmd)}\n".encode())
            self._log_file.flush()
            out = self._log_file
        log.info("launching %s", " ".join(shlex.quote(c) for c in cmd))
        try:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        except OSError as e:
            self._close_log()
            raise LaunchError(f"cannot start {cmd[0]!r}: {e} (check the path to the binary and that it is "
                              f"executable)") from e
        return self

    def wait_ready(self, timeout: Optional[float] = None) -> None:
        """Block until the server answers the UnrealCV handshake; LaunchError on exit or timeout."""
        timeout = self.startup_timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + timeout
        delay, last = 0.05, "closed"
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise LaunchError(f"server for {self.endpoint} exited with code {self.proc.returncode} during "
                                  f"start-up: {' '.join(self.command())}" + _log_tail(self.log_path))
            last = probe_unrealcv(self.host, self.port, timeout=self.probe_timeout)
            if last == "ready":
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        what = {"closed": "nothing accepted connections", "busy": "it is serving another client",
                "silent": "something listens but does not speak the UnrealCV protocol"}[last]
        raise LaunchError(f"UnrealCV at {self.endpoint} did not answer within {timeout:.0f} s ({what})"
                          + _log_tail(self.log_path))

    def responsive(self) -> bool:
        """True when a fresh connection completes the UnrealCV handshake (only when no client holds it)."""
        return probe_unrealcv(self.host, self.port, timeout=self.probe_timeout) == "ready"

    def is_alive(self) -> bool:
        """Process running (when launched) and its port accepting TCP. Safe while a client is connected."""
        if self.proc is not None and self.proc.poll() is not None:
            return False
        if not self.attached and self.proc is None:
            return False
        return port_accepts(self.host, self.port, timeout=self.probe_timeout)

    def ensure_alive(self, probe: bool = False) -> bool:
        """Restart the server if it died (or, with `probe`, does not answer the protocol: a hang).

        Returns True when it was restarted. Attached endpoints are only waited for (up to
        startup_timeout; LaunchError if they do not come back). Use `probe=True` only when no capture
        client is connected (UnrealCV serves one client at a time).
        """
        ok = self.is_alive()
        if ok and probe:
            state = probe_unrealcv(self.host, self.port, timeout=self.probe_timeout)
            ok = state in ("ready", "busy")
        if ok:
            return False
        if self.attached:
            log.warning("attached endpoint %s is not answering; waiting for it", self.endpoint)
            self.wait_ready()
            return False
        log.warning("server %s died or hangs; restarting it", self.endpoint)
        self.kill()  # a hung server would not act on SIGTERM; a dead one needs reaping only
        self.stop(timeout=5.0)
        self._wait_port_free(10.0)
        self.restarts += 1
        self.start()
        return True

    def _wait_port_free(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not port_is_free(self.port, self.host) and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL to its process group), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process group (SIGTERM, then SIGKILL after `timeout` s). No-op when attached."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:  # the group may hold children that outlived the leader
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self) -> str:
        mode = "attached" if self.attached else f"pid={self.pid}"
        return f"UEInstance({self.endpoint}, {mode}, restarts={self.restarts})"


def _check_template(template: Sequence[str]) -> None:
    """Reject unknown placeholders early (KeyError at launch time would be cryptic)."""
    import string

    for part in template:
        for _, name, _, _ in string.Formatter().parse(part):
            if name is not None and name not in PLACEHOLDERS:
                raise ValueError(f"launch command: unknown placeholder {{{name}}} in {part!r}; "
                                 f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
    if not any("{port}" in part for part in template):
        raise ValueError("launch command must contain {port} so each instance gets its own port "
                         f"(got {' '.join(template)!r})")
