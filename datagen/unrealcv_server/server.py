"""UnrealCV-protocol TCP server: a front door onto any :class:`~datagen.backends.base.CaptureBackend`.

Behaviour (mirrors the UnrealCV plugin where cheap)
    * Binds 127.0.0.1 unless told otherwise. On accept it sends the framed greeting
      ``"connected to relic-embedded <scene_id>"``.
    * One client at a time, like the plugin. The plugin refuses a second client outright; we QUEUE
      it for up to ``queue_wait`` seconds (so a client that connects just as the previous one leaves
      is served), then refuse it with a framed ``"error ..."`` instead of the greeting (the
      ``unrealcv`` client reports that as a failed connection) and close it.
    * Requests ``<id>:<command>`` are answered ``<id>:<body>`` strictly in order; any number of
      requests may be in flight on the connection (the client's ``request_batch`` pipelines).
    * Protocol violations (bad magic, zero or >256 MiB size, a payload without ``<id>:``) close that
      connection; a peer that stalls in the middle of a frame for ``frame_timeout`` seconds, or does
      not read its replies for ``send_timeout`` seconds, is dropped. Unknown commands and bad
      arguments get ``error <message>`` and the connection stays up. Nothing a client sends can stop
      the server; the next client is served normally.
    * Single-threaded event loop (``selectors``): rendering happens on the loop, so the backend is
      never used from two threads. :meth:`request_stop` (e.g. from a SIGINT/SIGTERM handler) ends
      :meth:`serve_forever` within ~0.1 s and closes every socket.
"""
from __future__ import annotations

import collections
import logging
import select
import selectors
import socket
import threading
import time
from typing import Optional

from datagen.backends.base import CaptureBackend
from datagen.unrealcv_server.commands import SERVER_NAME, CommandDispatcher
from datagen.unrealcv_server.protocol import FrameDecoder, ProtocolError, encode_frame, format_reply, parse_request

log = logging.getLogger(__name__)

_RECV_CHUNK = 1 << 20
_TICK = 0.1  # seconds between housekeeping passes (stop flag, timeouts)


class _Conn:
    def __init__(self, sock: socket.socket, addr):
        self.sock, self.addr = sock, addr
        self.decoder = FrameDecoder()
        self.queue: collections.deque[tuple[int, str]] = collections.deque()
        self.last_rx = time.monotonic()
        self.closed = False
        self.violation = False  # framing broken: answer what was parsed, then close
        self.eof = False        # peer half-closed: answer what was parsed, then close
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)


class UnrealCVServer:
    """Serve `backend` over the UnrealCV protocol.

    Use :meth:`serve_forever` in the main thread (CLI) or :meth:`start` / :meth:`shutdown` to run it
    in a background thread (tests). ``port=0`` picks a free port; :attr:`address` gives the bound one.
    """

    def __init__(self, backend: CaptureBackend, host: str = "127.0.0.1", port: int = 9000,
                 queue_wait: float = 5.0, frame_timeout: float = 10.0, send_timeout: float = 30.0,
                 png_level: int = 0):
        self.backend = backend
        self.host, self.port = host, port
        self.queue_wait, self.frame_timeout, self.send_timeout = queue_wait, frame_timeout, send_timeout
        self.dispatcher = CommandDispatcher(backend, port=port, host=host, png_level=png_level)
        self.greeting = f"connected to {SERVER_NAME} {self.dispatcher.scene_id}".encode()
        self._listen: Optional[socket.socket] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._active: Optional[_Conn] = None
        self._pending: collections.deque[tuple[_Conn, float]] = collections.deque()
        self.clients_served = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def address(self) -> tuple[str, int]:
        if self._listen is None:
            raise RuntimeError("server is not bound yet: call bind() or start()")
        return self._listen.getsockname()[:2]

    def bind(self) -> tuple[str, int]:
        if self._listen is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.host, self.port))
            except OSError as e:
                s.close()
                raise RuntimeError(f"cannot listen on {self.host}:{self.port} ({e.strerror or e}); "
                                   "is another server on that port? pick another with --port") from None
            s.listen(8)
            s.setblocking(False)
            self._listen = s
            self.port = s.getsockname()[1]
            self.dispatcher.port = self.port
        return self.address

    def start(self) -> tuple[str, int]:
        """Bind and serve in a daemon thread; returns (host, port)."""
        addr = self.bind()
        self._thread = threading.Thread(target=self.serve_forever, name="unrealcv-server", daemon=True)
        self._thread.start()
        return addr

    def request_stop(self) -> None:
        """Ask :meth:`serve_forever` to return (safe from signal handlers and other threads)."""
        self._stop.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        self.request_stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()

    # ------------------------------------------------------------------ loop
    def serve_forever(self) -> None:
        self.bind()
        sel = selectors.DefaultSelector()
        sel.register(self._listen, selectors.EVENT_READ, "listen")
        log.info("serving %s on %s:%d", self.dispatcher.scene_id, *self.address)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(_TICK):
                    if key.data == "listen":
                        self._accept(sel)
                    elif self._active is not None and key.fileobj is self._active.sock:
                        self._on_readable(sel, self._active)
                self._housekeeping(sel)
        finally:
            if self._active is not None:
                self._close(sel, self._active, "server shutting down")
            for conn, _ in self._pending:
                _quiet_close(conn.sock)
            self._pending.clear()
            sel.close()
            _quiet_close(self._listen)
            self._listen = None
            log.info("server stopped")

    def _accept(self, sel) -> None:
        while True:
            try:
                sock, addr = self._listen.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # e.g. EMFILE: keep serving the current client
                log.warning("accept failed: %s", e)
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock, addr)
            if self._active is None:
                self._activate(sel, conn)
            else:
                log.info("client %s:%d queued (one client at a time; waits up to %.1f s)", *addr[:2], self.queue_wait)
                self._pending.append((conn, time.monotonic()))

    def _activate(self, sel, conn: _Conn) -> None:
        conn.sock.settimeout(self.send_timeout)  # bounds sendall; reads only happen when readable
        if not self._send(conn, encode_frame(self.greeting)):
            self._close(sel, conn, "could not send greeting")
            return
        self._active = conn
        conn.last_rx = time.monotonic()
        self.dispatcher.client_connected = True
        self.clients_served += 1
        sel.register(conn.sock, selectors.EVENT_READ, "client")
        log.info("client %s:%d connected", *conn.addr[:2])

    def _close(self, sel, conn: _Conn, why: str) -> None:
        if conn.closed:
            return
        conn.closed = True
        if self._active is conn:
            try:
                sel.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
            self._active = None
            self.dispatcher.client_connected = False
        log.info("client %s:%d closed: %s", *conn.addr[:2], why)
        _quiet_close(conn.sock)

    def _housekeeping(self, sel) -> None:
        now = time.monotonic()
        a = self._active
        if a is not None and a.decoder.mid_frame and now - a.last_rx > self.frame_timeout:
            self._close(sel, a, f"stalled mid-frame for more than {self.frame_timeout:.1f} s")
        while self._active is None and self._pending:
            conn, _ = self._pending.popleft()
            self._activate(sel, conn)
        while self._pending and now - self._pending[0][1] > self.queue_wait:
            conn, _ = self._pending.popleft()
            conn.sock.settimeout(1.0)
            self._send(conn, encode_frame(b"error another client is connected; "
                                          b"UnrealCV serves one client at a time"))
            _quiet_close(conn.sock)
            log.info("client %s:%d refused: another client is connected", *conn.addr[:2])

    # ------------------------------------------------------------------ one client
    def _on_readable(self, sel, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV_CHUNK)
        except (BlockingIOError, InterruptedError, socket.timeout):
            return
        except OSError as e:
            self._close(sel, conn, f"receive failed: {e}")
            return
        if not data:
            self._close(sel, conn, "peer closed the connection")
            return
        try:
            self._ingest(conn, data)
            self._drain(conn)
            self._process(sel, conn)
        except Exception:  # never let one client take the server down
            log.exception("unexpected failure while serving %s:%d", *conn.addr[:2])
            self._close(sel, conn, "internal error")

    def _ingest(self, conn: _Conn, data: bytes) -> None:
        """Parse bytes into queued requests; marks the connection on a protocol violation."""
        if conn.violation:
            return
        conn.last_rx = time.monotonic()
        try:
            try:
                payloads = conn.decoder.feed(data)
            except ProtocolError as e:
                payloads = e.frames
                conn.violation = True
                log.warning("client %s:%d broke the protocol: %s", *conn.addr[:2], e)
            for payload in payloads:
                conn.queue.append(parse_request(payload))
        except ProtocolError as e:
            log.warning("client %s:%d broke the protocol: %s", *conn.addr[:2], e)
            # Requests parsed before the violation are still answered, then the connection closes.
            conn.violation = True

    def _drain(self, conn: _Conn) -> None:
        """Read whatever else has already arrived, without blocking (lets captures look ahead)."""
        while not conn.violation and not conn.eof:
            # (the socket has a timeout, so recv would first wait for data: poll with zero wait)
            if not conn.poller.poll(0):
                return
            try:
                data = conn.sock.recv(_RECV_CHUNK)
            except (BlockingIOError, InterruptedError, socket.timeout):
                return
            except OSError:
                return
            if not data:
                conn.eof = True
                return
            self._ingest(conn, data)

    def _process(self, sel, conn: _Conn) -> None:
        while conn.queue and not conn.closed:
            rid, text = conn.queue.popleft()
            if " /camera/" in text and not conn.violation:
                self._drain(conn)
            log.debug("request %d: %s", rid, text[:200])
            body = self.dispatcher.execute(text, upcoming=(t for _, t in conn.queue))
            log.debug("reply %d: %s", rid, f"{len(body)} bytes" if isinstance(body, bytes) else body[:200])
            if not self._send(conn, format_reply(rid, body)):
                self._close(sel, conn, "could not send a reply (peer gone or not reading)")
                return
        if conn.violation:
            self._close(sel, conn, "protocol violation")
        elif conn.eof:
            self._close(sel, conn, "peer closed the connection")

    def _send(self, conn: _Conn, data: bytes) -> bool:
        try:
            conn.sock.sendall(data)
            return True
        except (OSError, socket.timeout) as e:
            log.info("send to %s:%d failed: %s", *conn.addr[:2], e)
            return False


def _quiet_close(sock: Optional[socket.socket]) -> None:
    if sock is None:
        return
    try:
        sock.close()
    except OSError:
        pass
