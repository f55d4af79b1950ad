"""UnrealCV framing, request parsing, command table and wire encodings (no sockets)."""
from __future__ import annotations

import struct

import numpy as np
import pytest
import unrealcv

from datagen import conventions as cv
from datagen.unrealcv_server import encoding
from datagen.unrealcv_server.commands import COMMAND_TEMPLATES, CommandError, parse_command
from datagen.unrealcv_server.protocol import (
    MAGIC, MAX_PAYLOAD, FrameDecoder, ProtocolError, encode_frame, format_reply, parse_request)


def test_frame_matches_the_unrealcv_client_framing():
    payload = b"7:vget /camera/0/location"
    ours = encode_frame(payload)
    assert ours[:4] == struct.pack("<I", 0x9E2B83C1)
    assert ours[4:8] == struct.pack("<I", len(payload))
    # the client builds its frames with the same header
    m = unrealcv.SocketMessage(payload)
    theirs = struct.pack("I", m.magic) + struct.pack("I", m.payload_size) + payload
    assert ours == theirs


def test_decoder_byte_by_byte_and_coalesced():
    frames = [b"0:vget /unrealcv/status", b"1:" + bytes(range(256)) * 3, b"2:x"]
    stream = b"".join(encode_frame(f) for f in frames)
    dec = FrameDecoder()
    got = []
    for i in range(len(stream)):
        got += dec.feed(stream[i:i + 1])
    assert got == frames and dec.pending_bytes == 0
    assert FrameDecoder().feed(stream) == frames
    # split at every position
    for cut in range(len(stream)):
        d = FrameDecoder()
        assert d.feed(stream[:cut]) + d.feed(stream[cut:]) == frames


@pytest.mark.parametrize("header", [
    struct.pack("<II", 0xDEADBEEF, 4),       # bad magic
    struct.pack("<II", MAGIC, 0),            # zero size
    struct.pack("<II", MAGIC, MAX_PAYLOAD + 1),  # just over 256 MiB
    struct.pack("<II", MAGIC, 0xFFFFFFFF),   # absurd
])
def test_decoder_rejects_bad_headers(header):
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(header + b"abcd")


def test_frames_before_a_violation_are_kept():
    with pytest.raises(ProtocolError) as ei:
        FrameDecoder().feed(encode_frame(b"0:a") + encode_frame(b"1:b") + b"\x00" * 8)
    assert ei.value.frames == [b"0:a", b"1:b"]


def test_bad_magic_rejected_before_size_arrives():
    with pytest.raises(ProtocolError, match="magic"):
        FrameDecoder().feed(b"GET ")


def test_max_payload_is_accepted_as_a_header():
    d = FrameDecoder()
    assert d.feed(struct.pack("<II", MAGIC, MAX_PAYLOAD)) == []
    assert d.pending_bytes == 0 and d.mid_frame  # header consumed, waiting for the payload
    assert not FrameDecoder().mid_frame


def test_encode_frame_limits():
    with pytest.raises(ProtocolError):
        encode_frame(b"")


def test_parse_request_and_reply():
    assert parse_request(b"12:vget /objects") == (12, "vget /objects")
    assert parse_request(b"0:") == (0, "")
    assert parse_request(b"3:a:b") == (3, "a:b")
    rid, text = parse_request(b"4:vget \xff\xfe")
    assert rid == 4 and "\ufffd" in text
    for bad in (b"vget /objects", b":x", b"-1:x", b"1a:x", b"9" * 40 + b":x"):
        with pytest.raises(ProtocolError):
            parse_request(bad)
    assert format_reply(5, "ok") == encode_frame(b"5:ok")
    assert format_reply(6, b"\x89PNG") == encode_frame(b"6:\x89PNG")


def _example(template: str) -> str:
    fill = {"[id]": "0", "[name]": "floor_00", "[fmt]": "png", "[WxH]": "640x480", "[mode]": "lit"}
    out = []
    for tok in template.split():
        for k, v in fill.items():
            tok = tok.replace(k, v)
        out.append("1.5" if tok.startswith("[") else tok)
    return " ".join(out)


def test_command_templates_are_understood_by_the_client_and_parser():
    assert "vget /unrealcv/commands" in COMMAND_TEMPLATES
    assert len(set(COMMAND_TEMPLATES)) == len(COMMAND_TEMPLATES)
    for t in COMMAND_TEMPLATES:
        ex = _example(t)
        assert unrealcv.Client._matches_command_template(ex, t), (ex, t)
        assert t in parse_command(ex).route.templates


@pytest.mark.parametrize("text", ["", "hello", "vget", "vget /nothing/here", "vset /camera/0/warp 1 2 3",
                                  "vrun", "vget/camera/0/location", "VGET /objects"])
def test_unknown_commands_raise_command_error(text):
    with pytest.raises(CommandError, match="^Can not find a handler for URI '"):
        parse_command(text)


def test_unsupported_console_commands_are_not_implemented_without_running_anything():
    r = parse_command("vrun rm -rf /").route
    assert r.verb == "vrun" and r.handler == "console"


def test_png_bmp_npy_roundtrip_exact():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    for enc in (encoding.encode_png, encoding.encode_bmp, lambda a: encoding.encode_png(a, 1),
                lambda a: encoding.encode_png(a, 9)):
        assert np.array_equal(encoding.decode_image(enc(img)), img)
    with pytest.raises(ValueError):
        encoding.encode_png(img, 10)
    png = encoding.encode_png(img)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    bmp = encoding.encode_bmp(img)
    assert bmp[:2] == b"BM" and struct.unpack_from("<i", bmp, 22)[0] == -13  # top-down
    assert struct.unpack_from("<H", bmp, 28)[0] == 32  # 32-bit BGRA
    d = rng.random((5, 6)).astype(np.float32)
    assert np.array_equal(encoding.decode_npy(encoding.encode_npy(d)), d)


def test_instance_colours_unique_non_black_and_invertible():
    n = 5000
    lut = encoding.instance_palette(n)
    packed = {tuple(c) for c in lut[1:]}
    assert len(packed) == n and (0, 0, 0) not in packed
    assert tuple(lut[0]) == (0, 0, 0)
    assert [encoding.instance_colour(i) for i in range(50)] == [tuple(int(v) for v in c) for c in lut[1:51]]
    rng = np.random.default_rng(0)
    mask = rng.integers(-1, n, (20, 30)).astype(np.int32)
    rgb = encoding.mask_to_rgb(mask, n)
    colours = [encoding.instance_colour(i) for i in range(n)]
    assert np.array_equal(encoding.rgb_to_mask(rgb, colours), mask)
    # a colour that is no object's maps to -1
    rgb[0, 0] = (1, 2, 3) if (1, 2, 3) not in packed else (3, 2, 1)
    assert encoding.rgb_to_mask(rgb, colours)[0, 0] == -1


def test_normals_png_quantisation_and_no_hit():
    rng = np.random.default_rng(1)
    n = rng.normal(size=(8, 9, 3)).astype(np.float32)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[0, :] = 0  # no hit
    back = encoding.rgb_to_normals(encoding.normals_to_rgb(n))
    assert np.all(back[0] == 0)
    assert np.abs(back[1:] - n[1:]).max() < 0.01


def test_direction_conversion_flips_y_only():
    v = np.array([[0.6, 0.8, 0.0], [0.0, -0.6, 0.8]], np.float32)
    ue = cv.ours_direction_to_ue(v)
    assert ue.dtype == np.float32
    assert np.array_equal(ue, np.array([[0.6, -0.8, 0.0], [0.0, 0.6, 0.8]], np.float32))
    assert np.array_equal(cv.ue_direction_to_ours(ue), v)
    # consistent with the point conversion (which also scales)
    assert np.allclose(cv.ours_point_to_ue(v) / cv.CM_PER_M, ue)
