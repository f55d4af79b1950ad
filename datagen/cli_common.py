"""Argument checks shared by every `relic` command (datagen, relic_model and benchmark import this;
it imports nothing of theirs).

* argparse ``type=`` helpers that refuse bad values at parse time with a one-line message:
  :func:`positive_int`, :func:`nonnegative_int`, :func:`int_at_least`, :func:`positive_float`,
  :func:`nonnegative_float`, :func:`port`, :func:`port_or_zero`, :func:`host`, :func:`byte_size`,
  :func:`resolution_arg`.
* :func:`ensure_output_dir`: refuse an output folder that is a file, or that holds something that
  is not ours (saying what, and how to override).
* :class:`CliError`: an expected error; `relic` prints its message on one line and exits 1.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Callable, Iterable, Optional


class CliError(RuntimeError):
    """An expected failure with a message that says what to do; `relic` prints it on one line."""


# ---------------------------------------------------------------------- argparse types
def _int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _float(text: str) -> float:
    try:
        v = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return v


def int_at_least(lo: int) -> Callable[[str], int]:
    def check(text: str) -> int:
        v = _int(text)
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v

    check.__name__ = f"integer>={lo}"
    return check


positive_int = int_at_least(1)
positive_int.__name__ = "positive integer"
nonnegative_int = int_at_least(0)
nonnegative_int.__name__ = "integer >= 0"


def positive_float(text: str) -> float:
    v = _float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {v:g}")
    return v


def nonnegative_float(text: str) -> float:
    v = _float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v:g}")
    return v


def port(text: str) -> int:
    """A TCP port 1..65535."""
    v = _int(text)
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"{v} is not a TCP port (1..65535)")
    return v


def port_or_zero(text: str) -> int:
    """A TCP port 1..65535, or 0 = any free port (servers)."""
    v = _int(text)
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"{v} is not a TCP port (1..65535, or 0 for any free port)")
    return v


def host(text: str) -> str:
    """An IPv4/IPv6 address or a host name that resolves."""
    t = str(text).strip()
    if not t:
        raise argparse.ArgumentTypeError("empty host")
    try:
        ipaddress.ip_address(t)
        return t
    except ValueError:
        pass
    if re.fullmatch(r"[\d.]+", t):  # looks like IPv4 but is not one (999.1.1.1, 1.2.3)
        raise argparse.ArgumentTypeError(f"{t!r} is not a valid IP address")
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9\-]{0,62})(\.[A-Za-z0-9\-]{1,63})*\.?", t):
        raise argparse.ArgumentTypeError(f"{t!r} is not a host name or IP address")
    try:
        socket.getaddrinfo(t, None)
    except (socket.gaierror, UnicodeError) as e:
        raise argparse.ArgumentTypeError(f"cannot resolve host {t!r} ({getattr(e, 'strerror', None) or e})") from None
    return t


def byte_size(text: str) -> int:
    """``64M``, ``2G``, ``100k`` or a number of bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 1048576, 64M, 2G)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def parse_resolution(text: str, multiple: int = 1, presets: Optional[dict] = None,
                     min_side: int = 1, max_side: int = 8192) -> tuple[int, int]:
    """``"WxH"`` (or a preset name) -> (W, H); both sides within [min_side, max_side] and divisible
    by `multiple`. Raises ValueError with a message naming the fix."""
    t = str(text).strip().lower()
    if presets and t in presets:
        return tuple(presets[t])
    m = re.fullmatch(r"(\d{1,6})x(\d{1,6})", t)
    if not m:
        names = f" or a preset ({', '.join(presets)})" if presets else ""
        raise ValueError(f"resolution {text!r}: expected WxH (e.g. 112x64){names}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (min_side <= w <= max_side and min_side <= h <= max_side):
        raise ValueError(f"resolution {w}x{h}: sides must be within {min_side}..{max_side} pixels")
    if multiple > 1 and (w % multiple or h % multiple):
        lw, lh = max(multiple, w // multiple * multiple), max(multiple, h // multiple * multiple)
        raise ValueError(f"resolution {w}x{h}: width and height must be multiples of {multiple} "
                         f"(e.g. {lw}x{lh})")
    return w, h


def resolution_arg(multiple: int = 8, presets: Optional[dict] = None, min_side: int = 8) -> Callable[[str], str]:
    """argparse type that validates a ``WxH``/preset argument and keeps the text."""
    def check(text: str) -> str:
        try:
            parse_resolution(text, multiple, presets, min_side=min_side)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    check.__name__ = "resolution"
    return check


# ---------------------------------------------------------------------- output folders
IGNORABLE = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".gitkeep", ".gitignore"})


def ensure_output_dir(path, ours: Iterable[str] = (), what: str = "output folder", option: str = "--out",
                      marker: Optional[str] = None, force: bool = False, force_option: str = "--force",
                      create: bool = True) -> Path:
    """Check (and create) an output folder before anything is written into it.

    * a file at `path` -> CliError;
    * an existing folder is accepted when it is empty, holds `marker` (a file only we write: the
      folder is ours, e.g. a resumed run), or holds only names in `ours` (globs allowed) and
      harmless OS files;
    * otherwise CliError naming a few of the foreign entries and how to override (`force_option`
      when the command has one, else a new folder).
    Returns the folder as a Path (created when `create`).
    """
    import fnmatch

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CliError(f"{option} {p} is a file, not a folder; give a folder path (it is created if missing)")
    if p.is_dir() and not force:
        if marker is None or not (p / marker).exists():
            pats = list(ours) + ([marker] if marker else [])
            try:
                entries = sorted(os.listdir(p))
            except OSError as e:
                raise CliError(f"cannot read {option} {p}: {e.strerror or e}") from None
            foreign = [e for e in entries
                       if e not in IGNORABLE and not any(fnmatch.fnmatch(e, pat) for pat in pats)]
            if foreign:
                shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
                how = (f"choose a new or empty folder, or pass {force_option} to write into it anyway"
                       if force_option else "choose a new or empty folder")
                raise CliError(f"{option} {p} is not empty and is not a {what} (it holds {shown}); {how}")
    if create:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise CliError(f"{option} {p}: a parent of it is a file, not a folder") from None
    return p


def ensure_output_file(path, option: str = "--out", example: str = "out") -> Path:
    """Check that `path` can be written as a file: not a folder, its parent not a file."""
    p = Path(path)
    if p.is_dir():
        raise CliError(f"{option} {p} is a folder; give a file path (e.g. {p / example})")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CliError(f"{option} {p}: {parent} is a file, not a folder")
            break
    return p
