"""The server's reply path without copies: reply buffers and the stored (level 0) PNG encoder.

Replies go out as (header, body) so an image body is never copied into a new frame buffer; the
bytes on the wire must stay exactly those of ``format_reply``. The level-0 PNG is written by hand
(stored deflate blocks of whole scanlines); every decoder must read it (OpenCV, Pillow, zlib with
its adler32 check) and every chunk CRC must hold.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from datagen.unrealcv_server import encoding
from datagen.unrealcv_server.protocol import MAX_PAYLOAD, FrameDecoder, ProtocolError, format_reply, reply_parts


@pytest.mark.parametrize("body", ["", "ok", "error x" * 3, b"", b"\x00\xff" * 10, "é" * 40000, b"\x89PNG" * 50000])
def test_reply_parts_are_the_bytes_of_format_reply(body):
    parts = reply_parts(17, body)
    assert all(len(p) > 0 for p in parts)  # an empty buffer would never leave the output queue
    assert b"".join(parts) == format_reply(17, body)
    big = len(body.encode() if isinstance(body, str) else body) >= 64 << 10
    assert len(parts) == (2 if big else 1)
    if big and isinstance(body, bytes):
        assert parts[1] is body  # the image is not copied
    assert FrameDecoder().feed(b"".join(parts)) == [b"17:" + (body.encode() if isinstance(body, str) else body)]


def test_reply_parts_refuse_oversized_payloads():
    class Huge(bytes):
        def __len__(self):
            return MAX_PAYLOAD

    with pytest.raises(ProtocolError):
        reply_parts(1, Huge(b"x"))


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos:pos + 4])
        tag, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", png[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(tag + data), f"bad CRC in {tag!r}"
        out.append((tag, data))
        pos += 12 + n
    assert pos == len(png)
    return out


@pytest.mark.parametrize("shape", [(480, 832), (1, 1), (13, 17), (19, 832), (20, 832), (1000, 1000), (300, 1),
                                   (1, 4096), (64, 112)])
def test_stored_png_is_valid_and_lossless(shape):
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, shape + (3,), dtype=np.uint8)
    png = encoding.encode_png(rgb)          # level 0: the hand-written stored PNG
    chunks = _chunks(png)
    tags = [t for t, _ in chunks]
    assert tags[0] == b"IHDR" and tags[-1] == b"IEND" and set(tags[1:-1]) == {b"IDAT"}
    assert all(len(d) <= 65535 + 2 + 5 + 4 for t, d in chunks if t == b"IDAT")
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (shape[1], shape[0], 8, 6, 0, 0, 0)  # RGBA, 8 bit
    raw = zlib.decompress(b"".join(d for t, d in chunks if t == b"IDAT"))  # checks the adler32 too
    rgba = np.concatenate([rgb, np.full(shape + (1,), 255, np.uint8)], 2).reshape(shape[0], -1)
    assert raw == np.concatenate([np.zeros((shape[0], 1), np.uint8), rgba], 1).tobytes()  # filter 0 rows
    assert np.array_equal(encoding.decode_image(png), rgb)
    im = Image.open(io.BytesIO(png))
    im.load()
    assert im.mode == "RGBA" and np.array_equal(np.asarray(im), rgba.reshape(shape + (4,)))
    # the compressed levels decode to the same pixels
    assert np.array_equal(encoding.decode_image(encoding.encode_png(rgb, 1)), rgb)


def test_png_wider_than_a_stored_block_and_bad_input():
    wide = np.random.default_rng(0).integers(0, 256, (2, 20000, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="wide"):
        encoding._png_stored(wide)
    assert np.array_equal(encoding.decode_image(encoding.encode_png(wide)), wide)  # libpng's level 0 then
    with pytest.raises(ValueError, match="uint8"):
        encoding._png_stored(np.zeros((2, 2, 3), np.float32))
