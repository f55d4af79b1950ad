"""The save folder: the only place where the server writes files a client asks for.

``vget /camera/<id>/<view> <file>`` saves a capture on the server. The UnrealCV plugin writes
wherever the name points (absolute paths, ``..``), which over a non-loopback bind is remote file
overwrite. Here every name is resolved inside one folder (``--save-dir``), and refused when it is
not a plain relative name that stays inside:

    * empty names, NUL or control characters, absolute paths (``/x``, ``\\x``, ``C:x``), ``~``
      (home) prefixes, backslashes, more than :data:`MAX_DEPTH` folder levels, components longer
      than 255 bytes or paths longer than :data:`MAX_NAME` characters;
    * names that normalise to outside the folder (``../x.png``, ``sub/../../x.png``); names that
      normalise to inside are accepted (``sub/../x.png`` is ``x.png``);
    * names whose existing folders or file are symbolic links leading outside (the resolved
      real path must stay inside), and our own files (temporaries ``.tmp_*`` and the config file).

Limits: one file may hold at most ``max_file_bytes``; all files in the folder together at most
``quota_bytes`` (counted at start, then kept up to date; an overwritten file gives its old size
back). Writes are atomic: a temporary ``.tmp_*`` file in the target folder, then ``os.replace``;
on any failure the temporary file is removed, and leftovers of a killed server are removed at
start. ``enabled=False`` refuses every save (``--no-save``).
"""
from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

MAX_DEPTH = 8          # folder levels below the save folder
MAX_NAME = 1024        # characters of a requested name
TMP_PREFIX = ".tmp_"
CONFIG_NAME = "unrealcv.ini"
DEFAULT_MAX_FILE = 64 << 20   # bytes per saved file (a 4096x2048 stored PNG is 32 MiB)
DEFAULT_QUOTA = 1 << 30       # bytes in the whole save folder
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SaveRefused(ValueError):
    """A save request that is not allowed; the message is sent back as ``error <message>``."""


def format_size(n: int) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


class SaveFolder:
    """Resolves client file names inside `root` and writes them atomically within the limits."""

    def __init__(self, root: Optional[str | os.PathLike], max_file_bytes: int = DEFAULT_MAX_FILE,
                 quota_bytes: int = DEFAULT_QUOTA, enabled: bool = True):
        """`root` None (or ``enabled=False``): saving is disabled and nothing is created."""
        self.enabled = bool(enabled) and root is not None
        self.max_file_bytes = int(max_file_bytes)
        self.quota_bytes = int(quota_bytes)
        self.root = Path(os.path.abspath(os.path.expanduser(str(root)))) if root is not None else None
        self.used_bytes = 0
        self._seq = 0
        if self.enabled:
            self._prepare()

    # ------------------------------------------------------------------ start
    def _prepare(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"save folder {self.root} exists and is not a folder; pick another --save-dir")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(self.root))
        removed, used = 0, 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in filenames:
                p = os.path.join(dirpath, name)
                if name.startswith(TMP_PREFIX):
                    try:
                        os.unlink(p)
                        removed += 1
                    except OSError:
                        pass
                    continue
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                used += st.st_size
        self.used_bytes = used
        if removed:
            log.info("save folder %s: removed %d leftover temporary file(s)", self.root, removed)

    @property
    def config_file(self) -> Optional[Path]:
        return self.root / CONFIG_NAME if self.enabled else None

    def write_config(self, text: str) -> None:
        """Write the plugin-style config file (our own file: not counted in the quota)."""
        if not self.enabled:
            return
        self._write_atomic(self.config_file, text.encode("utf-8"))

    # ------------------------------------------------------------------ names
    def resolve(self, name: str) -> Path:
        """The absolute path `name` stands for inside the folder; raises SaveRefused."""
        if not self.enabled:
            raise SaveRefused("saving files is disabled on this server (--no-save); "
                              "ask for the bytes instead (png, bmp or npy as the argument)")
        if not name:
            raise SaveRefused("empty file name")
        if len(name) > MAX_NAME:
            raise SaveRefused(f"file name longer than {MAX_NAME} characters")
        if _CONTROL.search(name):
            raise SaveRefused("file name contains control characters")
        if "\\" in name:
            raise SaveRefused("file name contains a backslash; use '/' between folders")
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            raise SaveRefused(f"absolute path '{_show(name)}' refused: give a name relative to the "
                              f"save folder (see 'Config file:' in vget /unrealcv/status)")
        if name.startswith("~"):
            raise SaveRefused(f"'{_show(name)}' refused: '~' (home folder) is not allowed; give a name "
                              "relative to the save folder")
        norm = os.path.normpath(name)
        parts = norm.split("/")
        if norm == "." or parts[0] == ".." or os.path.isabs(norm):
            raise SaveRefused(f"'{_show(name)}' refused: it leads outside the save folder")
        if len(parts) - 1 > MAX_DEPTH:
            raise SaveRefused(f"'{_show(name)}' refused: more than {MAX_DEPTH} folder levels")
        if any(len(p.encode("utf-8")) > 255 for p in parts):
            raise SaveRefused("a file or folder name is longer than 255 bytes")
        if parts[-1].startswith(TMP_PREFIX) or norm == CONFIG_NAME:
            raise SaveRefused(f"'{_show(name)}' is reserved by the server")
        path = self.root / norm
        # Existing folders (and the file) may be symbolic links: their real target must be inside.
        real = Path(os.path.realpath(path))
        if not _inside(real, self.root):
            raise SaveRefused(f"'{_show(name)}' refused: it leads outside the save folder (symbolic link)")
        if real.exists() and real.is_dir():
            raise SaveRefused(f"'{_show(name)}' is a folder")
        return path

    def next_name(self, ext: str) -> str:
        """A fresh generated name (``00000001.png``, ...) that does not exist yet (plugin style)."""
        while True:
            self._seq += 1
            name = f"{self._seq:08d}.{ext}"
            if not (self.root / name).exists():
                return name

    # ------------------------------------------------------------------ write
    def save(self, name: str, data: bytes) -> Path:
        """Write `data` as `name` (atomic); returns the absolute path. Raises SaveRefused."""
        path = self.resolve(name)
        n = len(data)
        if n > self.max_file_bytes:
            raise SaveRefused(f"file of {format_size(n)} exceeds the per-file limit of "
                              f"{format_size(self.max_file_bytes)} (--save-max-file); ask for a smaller size")
        old = 0
        try:
            st = os.lstat(path)
            old = st.st_size if not os.path.islink(path) else 0
        except OSError:
            pass
        if self.used_bytes - old + n > self.quota_bytes:
            raise SaveRefused(f"save folder quota exhausted: {format_size(self.used_bytes)} used of "
                              f"{format_size(self.quota_bytes)} (--save-quota); delete files in "
                              f"{self.root} or restart with a larger quota")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # re-check after creating folders (a folder created meanwhile could be a link)
            if not _inside(Path(os.path.realpath(path.parent)), self.root):
                raise SaveRefused(f"'{_show(name)}' refused: it leads outside the save folder")
            self._write_atomic(path, data)
        except SaveRefused:
            raise
        except OSError as e:
            raise SaveRefused(f"cannot write '{_show(name)}': {e.strerror or e}") from None
        self.used_bytes += n - old
        return path

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}{path.suffix}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(tmp, flags, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # replaces a link itself, never its target
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _show(name: str, n: int = 60) -> str:
    return name if len(name) <= n else name[:n] + "..."
