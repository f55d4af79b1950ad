"""UnrealCV-protocol TCP server: a front door onto any :class:`~datagen.backends.base.CaptureBackend`.

Behaviour (mirrors the UnrealCV plugin where cheap, and is harder to upset than it)
    * Binds 127.0.0.1 unless told otherwise. On accept it sends the framed greeting
      ``"connected to relic-embedded <scene_id>"``.
    * One client at a time, like the plugin. The plugin refuses a second client outright; we QUEUE
      up to ``max_waiting`` of them for up to ``queue_wait`` seconds each, then refuse with a framed
      ``"error ..."`` instead of the greeting (the ``unrealcv`` client reports that as a failed
      connection) and close. Connections beyond ``max_waiting`` are refused at once.
    * A lone client may stay connected and idle as long as it likes (scripts idle between
      episodes). But while another client is waiting, the active client is dropped once it has
      made no progress for ``idle_timeout`` seconds: no complete request received and no reply
      bytes accepted by its socket. That covers a client that sends nothing, one that stalls in the
      middle of a message (one byte every few seconds never completes a request), and one that
      stopped reading its replies. The waiting client is then served.
    * Requests ``<id>:<command>`` are answered ``<id>:<body>`` strictly in order; any number of
      requests may be in flight on the connection (the client's ``request_batch`` pipelines).
    * All sockets are non-blocking: replies go to a per-connection output queue that is flushed
      when the socket is writable. While more than :data:`OUT_HIGH_WATER` bytes wait there, the
      server stops executing (and reading) that client's requests, so a client that floods
      requests and never reads costs bounded memory and never blocks the loop. Likewise at most
      :data:`MAX_QUEUED_REQUESTS` parsed requests are held per connection, and a request frame may
      not exceed :data:`MAX_REQUEST_BYTES` (commands are short text).
    * Protocol violations (bad magic, zero or oversized size, a payload without ``<id>:``) close
      that connection after answering the requests parsed before it. Unknown commands and bad
      arguments get ``error <message>`` and the connection stays up. Nothing a client sends can
      stop the server; the next client is served normally.
    * ``accept`` failing for lack of file descriptors (EMFILE/ENFILE) pauses accepting for
      :data:`ACCEPT_BACKOFF` s and is logged once per :data:`LOG_INTERVAL` s (with a count).
    * Single-threaded event loop (``selectors``): rendering happens on the loop, so the backend is
      never used from two threads. :meth:`request_stop` (e.g. from a SIGINT/SIGTERM handler) ends
      :meth:`serve_forever` within ~0.1 s plus the request being executed, and closes every socket
      without waiting for unsent replies.
"""
from __future__ import annotations

import collections
import errno
import logging
import selectors
import socket
import threading
import time
from typing import Optional

from datagen.backends.base import CaptureBackend
from datagen.unrealcv_server.commands import DEFAULT_EYES_DISTANCE_CM, SERVER_NAME, CommandDispatcher
from datagen.unrealcv_server.protocol import FrameDecoder, ProtocolError, encode_frame, parse_request, reply_parts
from datagen.unrealcv_server.savedir import DEFAULT_MAX_FILE, DEFAULT_QUOTA, SaveFolder

log = logging.getLogger(__name__)

_RECV_CHUNK = 1 << 20
_TICK = 0.1                   # seconds between housekeeping passes (stop flag, timeouts)
_WORK_SLICE = 0.25            # seconds of request execution before the loop looks around again
OUT_HIGH_WATER = 8 << 20      # bytes of unsent replies above which a client's requests wait
MAX_QUEUED_REQUESTS = 4096    # parsed requests held per connection before reading pauses
MAX_REQUEST_BYTES = 1 << 20   # largest request frame accepted (the plugin allows 256 MiB)
ACCEPT_BACKOFF = 0.5          # seconds accepting pauses after EMFILE/ENFILE
LOG_INTERVAL = 10.0           # seconds between two log lines about failing accepts
DEFAULT_IDLE_TIMEOUT = 10.0
DEFAULT_QUEUE_WAIT = 30.0
DEFAULT_MAX_WAITING = 8
_EARLY_LIMIT = 64 << 10      # bytes kept from a waiting client before its greeting
_FD_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class _Conn:
    def __init__(self, sock: socket.socket, addr):
        self.sock, self.addr = sock, addr
        self.decoder = FrameDecoder(max_payload=MAX_REQUEST_BYTES)
        self.queue: collections.deque[tuple[int, str]] = collections.deque()
        self.out: collections.deque[memoryview] = collections.deque()
        self.out_bytes = 0
        self.last_progress = time.monotonic()  # last complete request received or reply bytes sent
        self.out_since = 0.0                   # when unsent replies last started to wait (or last send)
        self.closed = False
        self.closing = False    # answer what was parsed, flush, then close (violation or peer EOF)
        self.close_why = ""
        self.events = 0         # selector interest currently registered
        self.early = bytearray()  # bytes a waiting client sent before its greeting

    @property
    def name(self) -> str:
        return "%s:%s" % tuple(self.addr[:2]) if isinstance(self.addr, tuple) else str(self.addr)

    def want_events(self) -> int:
        ev = 0
        if (not self.closing and self.out_bytes < OUT_HIGH_WATER
                and len(self.queue) < MAX_QUEUED_REQUESTS):
            ev |= selectors.EVENT_READ
        if self.out_bytes:
            ev |= selectors.EVENT_WRITE
        return ev


class UnrealCVServer:
    """Serve `backend` over the UnrealCV protocol.

    Use :meth:`serve_forever` in the main thread (CLI) or :meth:`start` / :meth:`shutdown` to run it
    in a background thread (tests). ``port=0`` picks a free port; :attr:`address` gives the bound one.
    ``save_dir``: the folder ``vget ... <file>`` writes into (None: saving disabled), see
    :mod:`datagen.unrealcv_server.savedir`.
    """

    def __init__(self, backend: CaptureBackend, host: str = "127.0.0.1", port: int = 9000,
                 queue_wait: float = DEFAULT_QUEUE_WAIT, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_waiting: int = DEFAULT_MAX_WAITING, png_level: int = 0, save_dir=None,
                 save_quota: int = DEFAULT_QUOTA, save_max_file: int = DEFAULT_MAX_FILE,
                 eyes_distance_cm: float = DEFAULT_EYES_DISTANCE_CM):
        self.backend = backend
        self.host, self.port = host, port
        self.queue_wait, self.idle_timeout = float(queue_wait), float(idle_timeout)
        self.max_waiting = int(max_waiting)
        self.save = SaveFolder(save_dir, max_file_bytes=save_max_file, quota_bytes=save_quota)
        self.dispatcher = CommandDispatcher(backend, port=port, host=host, png_level=png_level, save=self.save,
                                            eyes_distance_cm=eyes_distance_cm)
        self.greeting = f"connected to {SERVER_NAME} {self.dispatcher.scene_id}".encode()
        self._listen: Optional[socket.socket] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._sel: Optional[selectors.BaseSelector] = None
        self._active: Optional[_Conn] = None
        self._pending: collections.deque[tuple[_Conn, float]] = collections.deque()
        self._accept_paused_until = 0.0
        self._accept_failures = 0          # since the last log line
        self._accept_last_log = -1e9
        self.clients_served = 0
        self.clients_dropped_idle = 0

    def enable_saving(self, save_dir, quota: int = DEFAULT_QUOTA, max_file: int = DEFAULT_MAX_FILE) -> SaveFolder:
        """(Re)create the save folder (e.g. once the port is known, for a per-port default folder)."""
        self.save = SaveFolder(save_dir, max_file_bytes=max_file, quota_bytes=quota)
        self.dispatcher.set_save_folder(self.save)
        return self.save

    # ------------------------------------------------------------------ lifecycle
    @property
    def address(self) -> tuple[str, int]:
        if self._listen is None:
            raise RuntimeError("server is not bound yet: call bind() or start()")
        return self._listen.getsockname()[:2]

    def bind(self) -> tuple[str, int]:
        if self._listen is None:
            try:
                infos = socket.getaddrinfo(self.host, self.port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                           0, socket.AI_PASSIVE)
            except (socket.gaierror, UnicodeError) as e:
                raise RuntimeError(f"cannot listen on {self.host!r}: not an address of this machine "
                                   f"({getattr(e, 'strerror', None) or e}); use --host 127.0.0.1 "
                                   "(this machine only) or an address of one of its interfaces") from None
            family, _, _, _, sockaddr = infos[0]
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(sockaddr)
            except OSError as e:
                s.close()
                if e.errno == errno.EADDRINUSE:
                    why = "the port is in use: is another server on it? pick another with --port (0 = any free port)"
                elif e.errno == errno.EADDRNOTAVAIL:
                    why = "that address does not belong to this machine; use --host 127.0.0.1 or one of its interfaces"
                elif e.errno == errno.EACCES:
                    why = "permission denied: ports below 1024 need privileges; pick another with --port"
                else:
                    why = "check --host and --port"
                raise RuntimeError(f"cannot listen on {self.host}:{self.port} ({e.strerror or e}): {why}") from None
            s.listen(64)
            s.setblocking(False)
            self._listen = s
            self.port = s.getsockname()[1]
            self.dispatcher.port = self.port
            self.dispatcher.write_config()  # names the port; `vget /unrealcv/status` points at it
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
        self._sel = sel = selectors.DefaultSelector()
        sel.register(self._listen, selectors.EVENT_READ, "listen")
        log.info("serving %s on %s:%d", self.dispatcher.scene_id, *self.address[:2])
        try:
            while not self._stop.is_set():
                busy = self._active is not None and bool(self._active.queue) and self._can_execute(self._active)
                for key, mask in sel.select(0 if busy else _TICK):
                    if key.data == "listen":
                        self._accept()
                    elif isinstance(key.data, _Conn):
                        self._on_waiting_readable(key.data)
                    elif self._active is not None and key.fileobj is self._active.sock:
                        conn = self._active
                        if mask & selectors.EVENT_WRITE:
                            self._flush(conn)
                        if mask & selectors.EVENT_READ and not conn.closed:
                            self._on_readable(conn)
                if self._active is not None and not self._stop.is_set():
                    self._execute(self._active)
                self._housekeeping()
        finally:
            if self._active is not None:
                self._close(self._active, "server shutting down")
            for conn, _ in self._pending:
                _quiet_close(conn.sock)
            self._pending.clear()
            sel.close()
            self._sel = None
            _quiet_close(self._listen)
            self._listen = None
            log.info("server stopped")

    def _accept(self) -> None:
        while True:
            try:
                sock, addr = self._listen.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _FD_ERRNOS:
                    self._accept_backoff(e)
                else:
                    log.warning("accept failed: %s", e)
                return
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                _quiet_close(sock)
                continue
            conn = _Conn(sock, addr)
            if len(self._pending) >= self.max_waiting:
                for waiting, _ in list(self._pending):  # some may have left already: look first
                    self._on_waiting_readable(waiting)
            if self._active is None and not self._pending:
                self._activate(conn)
            elif len(self._pending) >= self.max_waiting:
                self._refuse(conn, f"{len(self._pending)} clients are already waiting")
            else:
                log.info("client %s queued (one client at a time; waits up to %.1f s)", conn.name, self.queue_wait)
                self._pending.append((conn, time.monotonic()))
                try:
                    self._sel.register(conn.sock, selectors.EVENT_READ, conn)  # notice when it leaves
                    conn.events = selectors.EVENT_READ
                except (KeyError, ValueError, OSError):
                    pass

    def _on_waiting_readable(self, conn: _Conn) -> None:
        """A waiting client sent bytes or left: keep up to 64 KiB for later, forget it if it left."""
        if conn.closed or conn is self._active:
            return
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data and len(conn.early) + len(data) <= _EARLY_LIMIT:
            conn.early += data
            return
        self._pending = collections.deque((c, t) for c, t in self._pending if c is not conn)
        self._unregister(conn)
        if data:  # far too much before its greeting: not an UnrealCV client
            self._refuse(conn, "sent more than 64 KiB before its greeting")
        else:
            _quiet_close(conn.sock)
            log.info("waiting client %s left", conn.name)

    def _unregister(self, conn: _Conn) -> None:
        if conn.events:
            try:
                self._sel.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            conn.events = 0

    def _accept_backoff(self, e: OSError) -> None:
        """Out of file descriptors: stop accepting for a moment, log once per interval."""
        now = time.monotonic()
        self._accept_failures += 1
        if now - self._accept_last_log >= LOG_INTERVAL:
            if self._accept_failures == 1:
                log.warning("accept failed: %s; pausing new connections for %.1f s at a time until descriptors "
                            "are free (reported at most every %g s)", e.strerror or e, ACCEPT_BACKOFF, LOG_INTERVAL)
            else:
                log.warning("accept still failing: %s (%d failures in the last %.0f s)", e.strerror or e,
                            self._accept_failures, now - self._accept_last_log)
            self._accept_last_log, self._accept_failures = now, 0
        if self._accept_paused_until <= now:
            try:
                self._sel.unregister(self._listen)
            except (KeyError, ValueError):
                pass
        self._accept_paused_until = now + ACCEPT_BACKOFF

    def _activate(self, conn: _Conn) -> None:
        self._unregister(conn)
        self._active = conn
        conn.last_progress = time.monotonic()
        self.dispatcher.client_connected = True
        self.clients_served += 1
        self._enqueue(conn, encode_frame(self.greeting))
        log.info("client %s connected", conn.name)
        if conn.early:
            early, conn.early = bytes(conn.early), bytearray()
            self._ingest(conn, early)
        self._update_events(conn)
        self._flush(conn)

    def _refuse(self, conn: _Conn, why: str) -> None:
        try:
            conn.sock.send(encode_frame(b"error another client is connected; UnrealCV serves one client at a time"))
        except OSError:
            pass
        _quiet_close(conn.sock)
        log.info("client %s refused: %s", conn.name, why)

    def _update_events(self, conn: _Conn) -> None:
        if conn.closed:
            return
        ev = conn.want_events()
        if ev == conn.events:
            return
        try:
            if conn.events == 0:
                self._sel.register(conn.sock, ev, "client")
            elif ev == 0:
                self._sel.unregister(conn.sock)
            else:
                self._sel.modify(conn.sock, ev, "client")
        except (KeyError, ValueError, OSError):
            pass
        conn.events = ev

    def _close(self, conn: _Conn, why: str) -> None:
        if conn.closed:
            return
        self._unregister(conn)
        conn.closed = True
        if self._active is conn:
            self._active = None
            self.dispatcher.client_connected = False
        log.info("client %s closed: %s", conn.name, why)
        _quiet_close(conn.sock)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self._accept_paused_until and now >= self._accept_paused_until and self._listen is not None:
            self._accept_paused_until = 0.0
            try:
                self._sel.register(self._listen, selectors.EVENT_READ, "listen")
            except (KeyError, ValueError):
                pass
        a = self._active
        if a is not None:
            # no progress: nothing received or sent; not reading: replies wait and none are taken
            idle = now - a.last_progress
            if a.out_bytes:
                idle = max(idle, now - a.out_since)
            if a.closing and idle > self.idle_timeout:
                self._close(a, f"{a.close_why}; unsent replies dropped after {self.idle_timeout:g} s")
            elif self._pending and idle > self.idle_timeout:
                self.clients_dropped_idle += 1
                self._close(a, f"{self._idle_kind(a)} for {idle:.1f} s while another client was waiting "
                               f"(--idle-timeout {self.idle_timeout:g})")
        while self._active is None and self._pending:
            conn, _ = self._pending.popleft()
            self._activate(conn)
        while self._pending and now - self._pending[0][1] > self.queue_wait:
            conn, _ = self._pending.popleft()
            self._unregister(conn)
            self._refuse(conn, f"another client was connected for the whole --queue-wait {self.queue_wait:g} s")

    @staticmethod
    def _idle_kind(conn: _Conn) -> str:
        if conn.out_bytes:
            return "not reading its replies"
        if conn.decoder.mid_frame:
            return "stalled in the middle of a message"
        return "silent"

    # ------------------------------------------------------------------ one client
    def _on_readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._close(conn, f"receive failed: {e}")
            return
        if not data:
            self._begin_closing(conn, "peer closed the connection")
            return
        self._ingest(conn, data)
        self._update_events(conn)

    def _begin_closing(self, conn: _Conn, why: str) -> None:
        conn.closing, conn.close_why = True, why
        if not conn.queue and not conn.out_bytes:
            self._close(conn, why)
        else:
            self._update_events(conn)

    def _ingest(self, conn: _Conn, data: bytes) -> None:
        """Parse bytes into queued requests; marks the connection on a protocol violation."""
        if conn.closing:
            return
        try:
            try:
                payloads = conn.decoder.feed(data)
                violation = None
            except ProtocolError as e:
                payloads, violation = e.frames, e
            for payload in payloads:
                conn.queue.append(parse_request(payload))
                conn.last_progress = time.monotonic()
            if violation is not None:
                raise violation
        except ProtocolError as e:
            # Requests parsed before the violation are still answered, then the connection closes.
            log.warning("client %s broke the protocol: %s", conn.name, e)
            self._begin_closing(conn, "protocol violation")

    def _drain(self, conn: _Conn) -> None:
        """Read whatever else has already arrived, without blocking (lets captures look ahead)."""
        while not conn.closing and not conn.closed and len(conn.queue) < MAX_QUEUED_REQUESTS:
            try:
                data = conn.sock.recv(_RECV_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not data:
                conn.closing, conn.close_why = True, "peer closed the connection"
                return
            self._ingest(conn, data)

    @staticmethod
    def _can_execute(conn: _Conn) -> bool:
        return not conn.closed and conn.out_bytes < OUT_HIGH_WATER

    def _execute(self, conn: _Conn) -> None:
        """Run queued requests while replies fit in the output queue, for at most one work slice."""
        t0 = time.monotonic()
        try:
            while conn.queue and self._can_execute(conn) and not self._stop.is_set():
                rid, text = conn.queue.popleft()
                if " /camera/" in text:
                    self._drain(conn)
                log.debug("request %d: %s", rid, text[:200])
                body = self.dispatcher.execute(text, upcoming=(t for _, t in conn.queue))
                log.debug("reply %d: %s", rid, f"{len(body)} bytes" if isinstance(body, bytes) else body[:200])
                for part in reply_parts(rid, body):  # header and body: the image is not copied again
                    self._enqueue(conn, part)
                self._flush(conn)
                if time.monotonic() - t0 > _WORK_SLICE:
                    break
        except Exception:  # never let one client take the server down
            log.exception("unexpected failure while serving %s", conn.name)
            self._close(conn, "internal error")
            return
        self._settle(conn)

    def _settle(self, conn: _Conn) -> None:
        """After serving or flushing: close a closing client once everything is sent, else re-arm its
        selector events."""
        if conn.closed:
            return
        if conn.closing and not conn.queue and not conn.out_bytes:
            self._close(conn, conn.close_why)
            return
        self._update_events(conn)

    def _enqueue(self, conn: _Conn, data: bytes) -> None:
        if not conn.out_bytes:
            conn.out_since = time.monotonic()
        conn.out.append(memoryview(data))
        conn.out_bytes += len(data)

    def _flush(self, conn: _Conn) -> None:
        """Send as much of the output queue as the socket takes now (never blocks)."""
        while conn.out and not conn.closed:
            head = conn.out[0]
            try:
                n = conn.sock.send(head)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self._close(conn, f"send failed: {e.strerror or e}")
                return
            if n <= 0:
                break
            conn.last_progress = conn.out_since = time.monotonic()
            conn.out_bytes -= n
            if n == len(head):
                conn.out.popleft()
            else:
                conn.out[0] = head[n:]
                break
        self._settle(conn)


def _quiet_close(sock: Optional[socket.socket]) -> None:
    if sock is None:
        return
    try:
        sock.close()
    except OSError:
        pass
