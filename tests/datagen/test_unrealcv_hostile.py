"""Malformed and hostile protocol input: the server closes or answers an error, never crashes, and
serves the next (real `unrealcv`) client normally. Real EmbeddedBackend, loopback, free ports."""
from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest
import unrealcv

from datagen.backends.embedded import EmbeddedBackend
from datagen.scenes.library import generate_scene
from datagen.unrealcv_server.protocol import MAGIC, MAX_PAYLOAD, FrameDecoder, encode_frame
from datagen.unrealcv_server.server import UnrealCVServer

W, H = 32, 24


@pytest.fixture(scope="module")
def server():
    srv = UnrealCVServer(EmbeddedBackend(generate_scene("apartment", 2), W, H), port=0,
                         queue_wait=1.0, frame_timeout=1.0, send_timeout=2.0)
    srv.start()
    yield srv
    srv.shutdown()


def _raw(server) -> socket.socket:
    """A raw TCP connection that has read the greeting."""
    s = socket.create_connection(server.address, timeout=5)
    assert _read_frames(s, 1)[0].startswith(b"connected to relic-embedded")
    return s


def _closed_by_server(s: socket.socket, timeout: float = 5.0) -> bool:
    """True when the server closes the connection (EOF / reset) within `timeout`."""
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


def _read_frames(s: socket.socket, n: int) -> list[bytes]:
    """Read `n` reply payloads (fails on EOF or after 5 s of silence)."""
    dec, got = FrameDecoder(), []
    s.settimeout(5)
    while len(got) < n:
        data = s.recv(65536)
        assert data, f"server closed the connection after {len(got)} of {n} replies"
        got += dec.feed(data)
    return got


def _next_client_is_served(server):
    c = unrealcv.Client(server.address)
    assert c.connect()
    try:
        r = c.request_batch(["vget /unrealcv/version", "vset /camera/0/location 10 20 150",
                             "vget /camera/0/location", "vget /camera/0/lit png"])
        assert r[0].startswith("v1.") and r[1] == "ok" and r[2] == "10.000 20.000 150.000"
        assert isinstance(r[3], bytes) and r[3][:4] == b"\x89PNG"
    finally:
        c.disconnect()


@pytest.mark.parametrize("blob", [
    struct.pack("<II", 0x12345678, 5) + b"0:abc",                      # bad magic
    struct.pack("<II", MAGIC, 0),                                       # zero size
    struct.pack("<II", MAGIC, MAX_PAYLOAD + 1),                         # over 256 MiB
    struct.pack("<II", MAGIC, 0xFFFFFFFF),                              # absurd length
    encode_frame(b"no id here"),                                        # payload without "<id>:"
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                              # wrong protocol
], ids=["bad_magic", "zero", "over_limit", "absurd", "no_id", "http"])
def test_protocol_violation_closes_connection(server, blob):
    s = _raw(server)
    s.sendall(blob)
    assert _closed_by_server(s)
    _next_client_is_served(server)


def test_requests_before_a_violation_are_answered(server):
    s = _raw(server)
    s.sendall(encode_frame(b"0:vget /unrealcv/version") + struct.pack("<II", 0xBAD, 1))
    frames = _read_frames(s, 1)
    assert frames[0].startswith(b"0:v1.")
    assert _closed_by_server(s)


def test_seeded_garbage_fuzz(server):
    rng = np.random.default_rng(1234)
    for i in range(40):
        s = _raw(server)
        kind = i % 4
        if kind == 0:  # pure garbage
            blob = rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes()
        elif kind == 1:  # valid magic, random size, random bytes
            blob = struct.pack("<II", MAGIC, int(rng.integers(0, 2**32))) + rng.bytes(int(rng.integers(0, 64)))
        elif kind == 2:  # valid frames with random payloads (mostly bad commands or no id)
            blob = b"".join(encode_frame(rng.bytes(int(rng.integers(1, 40)))) for _ in range(3))
        else:  # valid id, random utf-8-ish command text
            words = ["vget", "vset", "vrun", "/camera/0/", "location", "lit", "npy", "1e9", "-", "x", "//"]
            blob = b"".join(encode_frame(f"{k}:{' '.join(rng.choice(words, 4))}".encode()) for k in range(3))
        s.sendall(blob)
        s.shutdown(socket.SHUT_WR)
        # whatever it answers, the server must end this connection (EOF from us) and stay up
        assert _closed_by_server(s)
    _next_client_is_served(server)


def test_valid_id_random_commands_get_error_replies(server):
    rng = np.random.default_rng(99)
    s = _raw(server)
    n = 25
    for k in range(n):
        text = "vget /camera/0/" + "".join(chr(c) for c in rng.integers(97, 123, 8))
        s.sendall(encode_frame(f"{k}:{text}".encode()))
    got = _read_frames(s, n)
    for k, payload in enumerate(got):
        assert payload.startswith(f"{k}:error ".encode())
    s.close()
    _next_client_is_served(server)


def test_half_frames_then_disconnect(server):
    full = encode_frame(b"0:vget /camera/0/lit png")
    for cut in (1, 3, 4, 7, 8, 12, len(full) - 1):
        s = socket.create_connection(server.address, timeout=5)
        s.sendall(full[:cut])
        s.close()
    _next_client_is_served(server)


@pytest.mark.parametrize("cut", [3, 8, 10])  # inside the header, exactly the header, into the payload
def test_half_frame_then_stall_is_dropped(server, cut):
    s = _raw(server)
    s.sendall(encode_frame(b"0:vget /unrealcv/version")[:cut])
    assert _closed_by_server(s, timeout=5.0)  # frame_timeout is 1 s in this fixture
    _next_client_is_served(server)


def test_slow_client_byte_by_byte(server):
    s = _raw(server)
    blob = encode_frame(b"0:vset /camera/0/location 1 2 3") + encode_frame(b"1:vget /camera/0/location")
    for i in range(len(blob)):
        s.sendall(blob[i:i + 1])
        time.sleep(0.002)
    got = _read_frames(s, 2)
    assert got == [b"0:ok", b"1:1.000 2.000 3.000"]
    s.close()
    _next_client_is_served(server)


def test_client_that_never_reads_is_dropped(server):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(server.address)
    assert _read_frames(s, 1)[0].startswith(b"connected")  # now it is the active client
    # ask for many images and never read them: the server's send times out (2 s) and drops us
    s.sendall(b"".join(encode_frame(b"%d:vget /camera/0/lit bmp" % k) for k in range(3000)))
    t0 = time.monotonic()
    while server._active is not None and time.monotonic() - t0 < 15:
        time.sleep(0.1)  # not reading on purpose
    assert server._active is None, "a client that does not read its replies must be dropped"
    s.close()
    _next_client_is_served(server)


def test_second_client_is_queued_then_served(server):
    first = _raw(server)
    second = socket.create_connection(server.address, timeout=5)
    time.sleep(0.3)
    first.close()  # leaves within queue_wait: the second one gets the greeting
    assert _read_frames(second, 1)[0].startswith(b"connected")
    second.close()
    _next_client_is_served(server)


def test_second_client_is_refused_after_queue_wait(server):
    first = _raw(server)
    second = unrealcv.Client(server.address)
    t0 = time.monotonic()
    assert not second.connect()  # refused with an error frame instead of the greeting
    assert time.monotonic() - t0 < 5.0
    first.close()
    _next_client_is_served(server)


def test_dispatcher_never_raises_on_arbitrary_text():
    """Property: any command text yields a reply (str or bytes); text replies to garbage are errors."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from datagen.unrealcv_server.commands import COMMAND_TEMPLATES, CommandDispatcher

    disp = CommandDispatcher(EmbeddedBackend(generate_scene("apartment", 2), 16, 8))
    words = st.sampled_from(["vget", "vset", "vrun", "vbatch", "/camera/0/location", "/camera/0/lit",
                             "/camera/0/size", "/camera/0/moveto", "/object/x/color", "png", "npy", "bmp",
                             "1", "-1", "1e40", "nan", "inf", "99999999999", "0x10", "setres", "5x5w", ""])
    texts = st.one_of(st.text(max_size=60), st.lists(words, max_size=6).map(" ".join))

    @settings(max_examples=300, deadline=None, database=None)
    @given(texts)
    def check(text):
        r = disp.execute(text)
        assert isinstance(r, (str, bytes))
        if isinstance(r, str) and not r.startswith("error "):
            # a success must come from a real command
            assert any(text.split()[:1] == t.split()[:1] for t in COMMAND_TEMPLATES)

    check()
    assert disp.execute("vget /camera/0/location").count(" ") == 2
