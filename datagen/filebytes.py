"""The bytes of the files every package writes and checks: arrays as ``.npy`` bytes and SHA-256
digests of bytes and files.

``npy_bytes(arr)``     the exact bytes ``np.save`` writes for ``arr`` (no pickle), so a writer can
                       checksum them and write them atomically in one go
``sha256_bytes(b)``    hex SHA-256 of ``b``
``sha256_file(path)``  hex SHA-256 of a file's content, read in 1 MiB blocks

The corpus (``datagen.corpus``), the benchmark's task suites and LPIPS weight check, and the
training stages' latent-pool keys all use these, so a digest means the same thing everywhere.
"""
from __future__ import annotations

import hashlib
import io
import os

import numpy as np


def npy_bytes(arr: np.ndarray) -> bytes:
    """``arr`` encoded as a ``.npy`` file (``np.save``, ``allow_pickle=False``)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
