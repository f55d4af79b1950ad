"""One UnrealCV server process: a packaged UE binary, our embedded server, or an attached endpoint.

A `UEInstance` owns (or attaches to) one server on one port. `start()` launches the process and
blocks until the UnrealCV server answers `vget /unrealcv/status` through the real `unrealcv`
client; `ensure_alive()` restarts it when the process died or the server stopped answering;
`stop()` terminates the whole process group.

The launched command is a template with `{port}`, `{width}`, `{height}`, `{map}` placeholders, so the
same code drives a UE build (see `ue_command`) and, in tests and on machines without Unreal, the
embedded protocol server (`relic datagen serve --scene FILE --port {port}`).
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

log = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    """A server could not be started or did not answer in time."""


def ue_command(binary: str | Path, map_name: str | None = None, *, offscreen: bool = True,
               opengl: bool = False, gpu: int | None = None, extra: Sequence[str] = ()) -> list[str]:
    """Command template for a packaged UE binary with the UnrealCV plugin.

    `-cvport={port}` selects UnrealCV's port (overrides unrealcv.ini), `-ResX/-ResY` the window size,
    `-RenderOffScreen` renders without a window (Linux, Vulkan).
    """
    cmd = [str(binary)]
    if map_name:
        cmd.append(map_name)
    cmd += ["-cvport={port}", "-ResX={width}", "-ResY={height}", "-windowed", "-nosound", "-unattended"]
    if offscreen:
        cmd.append("-RenderOffScreen")
    if opengl:
        cmd.append("-opengl4")
    if gpu is not None:
        cmd.append(f"-graphicsadapter={int(gpu)}")
    return cmd + list(extra)


def write_unrealcv_ini(folder: str | Path, port: int, width: int, height: int, fov: float = 90.0) -> Path:
    """Write unrealcv.ini ([UnrealCV.Core] Port/Width/Height/FOV) into `folder` (atomically)."""
    folder = Path(folder)
    text = (f"[UnrealCV.Core]\nPort={int(port)}\nWidth={int(width)}\nHeight={int(height)}\n"
            f"FOV={float(fov):f}\nEnableInput=False\nEnableRightEye=False\n")
    path = folder / "unrealcv.ini"
    tmp = folder / f".unrealcv.ini.tmp{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def unrealcv_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when an UnrealCV server on host:port completes the greeting and answers a status query."""
    import unrealcv

    client = unrealcv.Client((host, port))
    try:
        client.connect(timeout=timeout)
        if not client.isconnected():
            return False
        reply = client.request("vget /unrealcv/status", timeout=timeout)
        return reply is not None and not str(reply).startswith("error")
    except Exception:  # any failure means "not answering yet"
        return False
    finally:
        try:
            client.disconnect()
        except Exception:
            pass


class UEInstance:
    """One UnrealCV endpoint, launched from `command` (a template) or attached (`command=None`)."""

    def __init__(self, command: Optional[Sequence[str] | str], *, port: int, host: str = "127.0.0.1",
                 width: int = 640, height: int = 480, map_name: str = "", workdir: str | Path | None = None,
                 log_dir: str | Path | None = None, startup_timeout: float = 120.0, env: dict | None = None):
        if isinstance(command, str):
            command = shlex.split(command)
        self.template = list(command) if command else None
        self.host, self.port, self.width, self.height, self.map_name = host, int(port), int(width), int(height), map_name
        self.workdir = Path(workdir) if workdir else None
        self.log_dir = Path(log_dir) if log_dir else None
        self.startup_timeout = float(startup_timeout)
        self.env = env
        self.proc: Optional[subprocess.Popen] = None
        self.restarts = 0
        self._log_file = None

    # -------------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def attached(self) -> bool:
        return self.template is None

    def command(self) -> list[str]:
        if self.template is None:
            raise LaunchError(f"{self.endpoint} is attached, not launched: there is no command")
        fields = {"port": self.port, "width": self.width, "height": self.height, "map": self.map_name}
        return [part.format(**fields) for part in self.template]

    def start(self) -> "UEInstance":
        """Launch (unless attached) and wait until UnrealCV answers; raise LaunchError otherwise."""
        if self.attached:
            self.wait_ready()
            return self
        if self.proc is not None and self.proc.poll() is None:
            return self
        if not port_is_free(self.port, self.host):
            raise LaunchError(f"port {self.port} is already in use: stop what is listening there, "
                              f"choose another --base-port, or attach to it instead")
        cmd = self.command()
        out = subprocess.DEVNULL
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_dir / f"server-{self.port}.log", "ab")
            out = self._log_file
        log.info("launching %s", " ".join(shlex.quote(c) for c in cmd))
        try:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
                                         env=self.env, start_new_session=True)
        except OSError as e:
            raise LaunchError(f"cannot start {cmd[0]!r}: {e}") from e
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.1
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise LaunchError(f"server for {self.endpoint} exited with code {self.proc.returncode} "
                                  f"during start-up" + (f" (log: {self.log_dir})" if self.log_dir else ""))
            if unrealcv_answers(self.host, self.port, timeout=2.0):
                return
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
        raise LaunchError(f"UnrealCV at {self.endpoint} did not answer within {self.startup_timeout:.0f} s")

    def is_alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            return False
        return unrealcv_answers(self.host, self.port, timeout=2.0)

    def ensure_alive(self) -> bool:
        """Restart the server if it died or stopped answering. Returns True when it restarted."""
        if self.is_alive():
            return False
        if self.attached:
            log.warning("attached endpoint %s is not answering; waiting for it", self.endpoint)
            self.wait_ready()
            return False
        log.warning("server %s died or hangs; restarting", self.endpoint)
        self.stop()
        self.restarts += 1
        self.start()
        return True

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL to its process group): for tests of crash recovery."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        self.proc = None
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
