"""UnrealCV wire framing: the one place that knows the bytes on the socket.

Frame (both directions)
    uint32 magic 0x9E2B83C1, uint32 payload size, payload -- little-endian ("native" on x86, which
    is what the plugin and the ``unrealcv`` client use). A frame with a bad magic, a zero size or a
    size above :data:`MAX_PAYLOAD` (256 MiB) is a protocol violation: the plugin drops that
    connection, and so do we (:class:`FrameDecoder` raises :class:`ProtocolError`).

Payloads
    request: ``b"<id>:<command>"`` with a decimal id (the client counts from 0);
    reply:   ``b"<id>:" + body`` with the id of the request it answers, replies in request order.
    Text bodies are utf-8 (``"ok"``, ``"error <message>"``, numbers); binary bodies (png, bmp,
    npy bytes) follow the ``"<id>:"`` prefix directly.
"""
from __future__ import annotations

import struct

MAGIC = 0x9E2B83C1
MAX_PAYLOAD = 256 * 1024 * 1024  # bytes; larger size headers are rejected (plugin behaviour)
_HEADER = struct.Struct("<II")
HEADER_SIZE = _HEADER.size  # 8 bytes


class ProtocolError(ValueError):
    """The peer broke the framing (bad magic, zero or absurd size, malformed request).

    ``frames``: whole payloads that :meth:`FrameDecoder.feed` parsed before the violation.
    """

    def __init__(self, message: str, frames: list[bytes] | None = None):
        super().__init__(message)
        self.frames = list(frames or [])


def encode_frame(payload: bytes) -> bytes:
    """Wrap `payload` in a frame: magic, little-endian uint32 size, payload."""
    n = len(payload)
    if n == 0 or n > MAX_PAYLOAD:
        raise ProtocolError(f"payload size {n} outside 1..{MAX_PAYLOAD}")
    return _HEADER.pack(MAGIC, n) + payload


class FrameDecoder:
    """Incremental frame parser: feed it bytes as they arrive, get whole payloads back.

    Keeps at most one partial frame. :meth:`feed` raises :class:`ProtocolError` on the first bad
    header; after that the connection must be dropped (the stream cannot be resynchronised).
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.max_payload = max_payload
        self._buf = bytearray()
        self._need: int | None = None  # payload size of the frame being read, once its header is in

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame held (payload bytes only once its header was consumed)."""
        return len(self._buf)

    @property
    def mid_frame(self) -> bool:
        """True when part of a frame (even just its header) has arrived but not all of it."""
        return bool(self._buf) or self._need is not None

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the payloads completed by them, in order.

        On a violation raises ProtocolError whose ``frames`` holds the payloads completed before it.
        """
        self._buf += data
        out: list[bytes] = []
        try:
            self._parse(out)
        except ProtocolError as e:
            e.frames = out
            raise
        return out

    def _parse(self, out: list[bytes]) -> None:
        while True:
            if self._need is None:
                if len(self._buf) < HEADER_SIZE:
                    # Reject a bad magic as soon as its 4 bytes are in (do not wait for more).
                    if len(self._buf) >= 4:
                        self._check_magic(struct.unpack_from("<I", self._buf, 0)[0])
                    return
                magic, size = _HEADER.unpack_from(self._buf, 0)
                self._check_magic(magic)
                if size == 0:
                    raise ProtocolError("zero payload size")
                if size > self.max_payload:
                    raise ProtocolError(f"payload size {size} exceeds the {self.max_payload} byte limit")
                del self._buf[:HEADER_SIZE]
                self._need = size
            if len(self._buf) < self._need:
                return
            out.append(bytes(self._buf[: self._need]))
            del self._buf[: self._need]
            self._need = None

    @staticmethod
    def _check_magic(magic: int) -> None:
        if magic != MAGIC:
            raise ProtocolError(f"bad magic 0x{magic:08X} (expected 0x{MAGIC:08X})")


def parse_request(payload: bytes) -> tuple[int, str]:
    """``b"<id>:<command>"`` -> (id, command). Raises ProtocolError when there is no usable id.

    A command that is not valid utf-8 is returned with replacement characters (it will then be
    answered as an unknown command rather than dropping the connection).
    """
    head, sep, rest = payload.partition(b":")
    if not sep or not head.isdigit() or len(head) > 18:
        raise ProtocolError(f"request without '<id>:' prefix: {payload[:40]!r}")
    return int(head), rest.decode("utf-8", errors="replace")


def format_reply(request_id: int, body: bytes | str) -> bytes:
    """The framed reply ``<id>:<body>`` (body str is utf-8 encoded)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return encode_frame(b"%d:" % request_id + body)


_JOIN_BELOW = 64 << 10  # bodies smaller than this are joined to their header (one buffer)


def reply_parts(request_id: int, body: bytes | str) -> tuple[bytes, ...]:
    """The framed reply ``<id>:<body>`` as non-empty buffers that, sent in order, are the bytes of
    :func:`format_reply`: (frame header + ``<id>:``, body) for a large (image) body, which is so
    not copied into a new buffer; one buffer for a small body."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    prefix = b"%d:" % request_id
    n = len(prefix) + len(body)
    if n > MAX_PAYLOAD:
        raise ProtocolError(f"payload size {n} outside 1..{MAX_PAYLOAD}")
    head = _HEADER.pack(MAGIC, n) + prefix
    if len(body) < _JOIN_BELOW:
        return (head + body,)
    return head, body
