"""Atomic file writes, shared by every package: write to a unique temporary file in the target's
folder, then ``os.replace`` it into place, so a reader never sees a half-written file and a killed
job leaves either the old file or the new one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path, write: Callable[[Path], None], suffix: str = ".tmp") -> Path:
    """Create ``path`` atomically: ``write(tmp_path)`` fills a temporary file that then replaces it.

    The temporary file's name ends with ``suffix``: give ``path``'s own suffix (e.g. ".png",
    ".mp4") to a writer that picks the format from the file name (cv2.imwrite, cv2.VideoWriter)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
