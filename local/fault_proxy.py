"""Fault-injecting loopback HTTP proxy between boto3 clients and the AWS emulator (moto)."""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import ipaddress
import logging
import random
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Self
from urllib.parse import urlsplit

from local.http_body import BodyTooLargeError, MalformedBodyError, read_body

LOGGER = logging.getLogger(__name__)

LISTEN_HOST = "127.0.0.1"
ANY_OPERATION = "*"
UNKNOWN_OPERATION = "unknown"
# AWS JSON requests are far below this; a larger one is refused rather than buffered.
MAX_BODY_BYTES = 32 * 1024 * 1024
HOLLOW_BODY = b"{}"
_DEFAULT_JSON_TYPE = "application/x-amz-json-1.0"
# An operation name is logged, so anything else in X-Amz-Target is not taken as one.
_OPERATION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# Connection-level headers: they describe one hop, never the request itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
# The proxy answers 100-continue itself; upstream gets the body with the headers.
_REQUEST_ONLY_DROPPED = frozenset({"expect"})
# A hollow answer is a success: error markers and the old body's checksum must not survive.
_HOLLOW_DROPPED = frozenset({"x-amzn-errortype", "x-amzn-query-error", "x-amz-crc32"})


class Fault(StrEnum):
    """What happens to one request (see FaultProxy)."""

    PASS = "pass"  # noqa: S105 - a fault name, not a password
    DELAY = "delay"
    DROP = "drop"
    RESET_AFTER_FORWARD = "reset_after_forward"
    TRUNCATE = "truncate"
    HOLLOW = "hollow"


class UpstreamNotAllowedError(ValueError):
    """The upstream URL is not plain http on a loopback address."""


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot: requests per (operation, fault), the fault log, and what reached upstream."""

    counts: Mapping[tuple[str, str], int]
    # In decision order; the oldest entries go once event_log_limit is reached.
    events: tuple[tuple[str, str], ...]
    # Requests sent upstream in full, per operation (a dropped one never is).
    forwarded: Mapping[str, int]

    def count(self, operation: str | None = None, fault: str | None = None) -> int:
        """How many requests matched; None matches any operation or fault."""
        return sum(
            number
            for (op, name), number in self.counts.items()
            if operation in (None, op) and fault in (None, name)
        )


@dataclass(frozen=True)
class _Decision:
    fault: Fault
    delay_seconds: float = 0.0


@dataclass
class _Plan:
    operation: str
    fault: Fault
    remaining: int
    delay_seconds: float | None


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


def operation_name(target: str | None) -> str:
    """The operation in an X-Amz-Target header: `DynamoDB_20120810.PutItem` gives `PutItem`."""
    name = (target or "").rsplit(".", 1)[-1].strip()
    return name if _OPERATION_NAME.fullmatch(name) else UNKNOWN_OPERATION


def _checked_operation(operation: str) -> str:
    """An operation name as matched against requests; a full X-Amz-Target value also works."""
    name = operation_name(operation)
    if name == UNKNOWN_OPERATION and operation != UNKNOWN_OPERATION:
        raise ValueError(f"not an operation name: {operation!r}")
    return name


def parse_upstream(url: str) -> tuple[str, int]:
    """Host and port of an http://<loopback>:<port> URL; anything else is refused."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.username or parts.password:
        raise UpstreamNotAllowedError(
            f"upstream must be a plain http://<loopback address>:<port> URL, got {url!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UpstreamNotAllowedError(f"upstream URL must have no path or query: {url!r}")
    host = "127.0.0.1" if parts.hostname == "localhost" else (parts.hostname or "")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UpstreamNotAllowedError(
            f"upstream must be a loopback address (127.0.0.0/8, ::1 or localhost): {url!r}"
        )
    try:
        port = parts.port
    except ValueError as error:
        raise UpstreamNotAllowedError(f"upstream port is not valid: {url!r}") from error
    if port is None:
        raise UpstreamNotAllowedError(f"upstream URL needs an explicit port: {url!r}")
    return host, port


class FaultProxy:
    """The proxy on 127.0.0.1: bound when built, serving between start() and stop().

    botocore resends a request whose answer it never got, although the first one may have
    committed; hooks inside botocore cannot show that, real sockets can. Per request, either
    pass it on or apply one fault:

    - delay: wait (0..max_delay s at random, or a planned time) before forwarding;
    - drop: close the client connection before anything reaches upstream;
    - reset_after_forward: forward, read the whole answer (the write committed), then reset
      the client connection (RST) without a byte of the answer;
    - truncate: forward, send the status line, the headers (original Content-Length) and half
      the body, then close;
    - hollow: forward, then answer 200 with the body {}: a "success" missing every field.

    Planned faults (inject) come first, then the random policy: a share `rate` of the requests
    for `operations` (None: all) get `mode`, drawn from random.Random(seed). Only operation
    and fault names are ever logged or counted: bodies can hold card data and keys. The event
    log keeps the last `event_log_limit` decisions; the counts stay exact.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        port: int = 0,
        mode: Fault | str = Fault.PASS,
        rate: float = 0.0,
        operations: Iterable[str] | None = None,
        seed: int | None = None,
        max_delay: float = 3.0,
        upstream_timeout: float = 30.0,
        idle_timeout: float = 120.0,
        event_log_limit: int = 100_000,
    ) -> None:
        self._upstream_host, self._upstream_port = parse_upstream(upstream_url)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {rate}")
        if max_delay < 0:
            raise ValueError(f"max_delay must be >= 0, got {max_delay}")
        self.mode = Fault(mode)
        self.rate = rate
        self.operations = (
            None if operations is None else frozenset(map(_checked_operation, operations))
        )
        self.max_delay = max_delay
        self.upstream_timeout = upstream_timeout
        self.idle_timeout = idle_timeout

        self._lock = threading.Lock()
        self._rng = random.Random(seed)  # noqa: S311 - fault choice, not security
        self._plans: list[_Plan] = []
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._events: collections.deque[tuple[str, str]] = collections.deque(maxlen=event_log_limit)
        self._forwarded: collections.Counter[str] = collections.Counter()

        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._upstreams: set[http.client.HTTPConnection] = set()
        self._handlers: set[threading.Thread] = set()
        self._serving: threading.Thread | None = None
        self._stopped = False
        self._server = _Server(self, port)
        self.port: int = self._server.server_port
        self.url = f"http://{LISTEN_HOST}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        with self._lock:
            if self._stopped:
                raise RuntimeError("a stopped FaultProxy cannot be started again")
            if self._serving is None:
                self._serving = threading.Thread(
                    target=self._server.serve_forever,
                    kwargs={"poll_interval": 0.1},
                    name=f"fault-proxy-{self.port}",
                    daemon=True,
                )
                self._serving.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, cut every client and upstream connection, wait for the handlers."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            serving = self._serving
        self._stopping.set()
        if serving is not None:
            self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
            upstreams = list(self._upstreams)
            handlers = list(self._handlers)
        # shutdown() wakes a thread blocked in recv on that socket; close() alone may not.
        for connection in connections:
            _quietly_shutdown(connection)
        for upstream in upstreams:
            if upstream.sock is not None:
                _quietly_shutdown(upstream.sock)
        deadline = time.monotonic() + timeout
        for thread in [*handlers, *([serving] if serving else [])]:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults and counters -----------------------------------------------------------------

    def inject(
        self,
        operation: str,
        fault: Fault | str,
        *,
        times: int = 1,
        delay_seconds: float | None = None,
    ) -> None:
        """The next `times` requests for `operation` ("*": any) get `fault`, before the policy.

        A planned delay waits `delay_seconds`, or max_delay when not given (exact, not random).
        """
        chosen = Fault(fault)
        if operation != ANY_OPERATION:
            operation = _checked_operation(operation)
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        if delay_seconds is not None and (chosen is not Fault.DELAY or delay_seconds < 0):
            raise ValueError("delay_seconds is only for the delay fault, and must be >= 0")
        with self._lock:
            self._plans.append(_Plan(operation, chosen, times, delay_seconds))

    def set_policy(
        self,
        mode: Fault | str,
        rate: float,
        *,
        operations: Iterable[str] | None = None,
        seed: int | None = None,
        max_delay: float | None = None,
    ) -> None:
        """Replace the random policy while serving; planned faults and counts are kept.

        A request already decided keeps its fault. With a seed, the draws restart from it, so
        the fault sequence from here on is the one a proxy built with these values would draw.
        """
        chosen = Fault(mode)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {rate}")
        if max_delay is not None and max_delay < 0:
            raise ValueError(f"max_delay must be >= 0, got {max_delay}")
        names = None if operations is None else frozenset(map(_checked_operation, operations))
        with self._lock:
            self.mode = chosen
            self.rate = rate
            self.operations = names
            if max_delay is not None:
                self.max_delay = max_delay
            if seed is not None:
                self._rng = random.Random(seed)  # noqa: S311 - fault choice, not security

    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(
                counts=dict(self._counts),
                events=tuple(self._events),
                forwarded=dict(self._forwarded),
            )

    def _decide(self, operation: str) -> _Decision:
        with self._lock:
            decision = self._planned(operation) or self._drawn(operation)
            self._counts[operation, decision.fault.value] += 1
            self._events.append((operation, decision.fault.value))
        if decision.fault is not Fault.PASS:
            LOGGER.debug("fault %s on %s", decision.fault.value, operation)
        return decision

    def _planned(self, operation: str) -> _Decision | None:
        for plan in self._plans:
            if plan.operation in (operation, ANY_OPERATION):
                plan.remaining -= 1
                if plan.remaining == 0:
                    self._plans.remove(plan)
                delay = self.max_delay if plan.delay_seconds is None else plan.delay_seconds
                return _Decision(plan.fault, delay if plan.fault is Fault.DELAY else 0.0)
        return None

    def _drawn(self, operation: str) -> _Decision:
        # Only requests the policy covers consume random numbers, so the fault sequence for
        # them does not depend on other traffic (or on planned faults) in between.
        if self.mode is Fault.PASS or self.rate == 0.0:
            return _Decision(Fault.PASS)
        if self.operations is not None and operation not in self.operations:
            return _Decision(Fault.PASS)
        if self._rng.random() >= self.rate:
            return _Decision(Fault.PASS)
        if self.mode is Fault.DELAY:
            return _Decision(Fault.DELAY, self._rng.uniform(0.0, self.max_delay))
        return _Decision(self.mode)

    # -- upstream ----------------------------------------------------------------------------

    def _forward(
        self,
        operation: str,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
    ) -> _Answer:
        """One request on its own upstream connection, answer read in full (length or close)."""
        upstream = http.client.HTTPConnection(
            self._upstream_host, self._upstream_port, timeout=self.upstream_timeout
        )
        with self._lock:
            self._upstreams.add(upstream)
        try:
            has_host = any(name.lower() == "host" for name, _ in headers)
            # The Host header is signed (SigV4): pass the client's one on unchanged.
            upstream.putrequest(method, path, skip_host=has_host, skip_accept_encoding=True)
            for name, value in headers:
                upstream.putheader(name, value)
            if body is not None:
                upstream.putheader("Content-Length", str(len(body)))
            upstream.putheader("Connection", "close")
            upstream.endheaders(body)
            with self._lock:
                self._forwarded[operation] += 1
            response = upstream.getresponse()
            data = response.read()
            return _Answer(response.status, response.reason, response.getheaders(), data)
        finally:
            upstream.close()
            with self._lock:
                self._upstreams.discard(upstream)

    # -- bookkeeping for stop() ----------------------------------------------------------------

    def _track(self, connection: socket.socket) -> bool:
        with self._lock:
            if self._stopped:
                return False
            self._connections.add(connection)
            self._handlers.add(threading.current_thread())
            return True

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)
            self._handlers.discard(threading.current_thread())


def _quietly_shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(self, proxy: FaultProxy, port: int) -> None:
        self.proxy = proxy
        super().__init__((LISTEN_HOST, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall; not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients vanish mid-answer on purpose here; never print a traceback (or any data).
        LOGGER.debug("connection ended: %s", type(sys.exc_info()[1]).__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Idle keep-alive connections end after this, so their threads do not pile up.
        self.connection.settimeout(self.server.proxy.idle_timeout)
        if not self.server.proxy._track(self.connection):
            # Accepted while stopping: end it before a request is read.
            _quietly_shutdown(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.proxy._untrack(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        # The default access log writes request lines to stderr; this proxy logs no traffic.
        return

    def _relay(self) -> None:
        proxy = self.server.proxy
        try:
            body = read_body(self.rfile, self.headers, MAX_BODY_BYTES)
        except MalformedBodyError:
            self._send(_plain_answer(400), close=True)
            return
        except BodyTooLargeError:
            self._send(_plain_answer(413), close=True)
            return
        except (OSError, ValueError):
            self.close_connection = True
            return
        operation = operation_name(self.headers.get("X-Amz-Target"))
        decision = proxy._decide(operation)
        if decision.fault is Fault.DROP:
            self.close_connection = True
            return
        if decision.fault is Fault.DELAY and proxy._stopping.wait(decision.delay_seconds):
            self.close_connection = True
            return
        try:
            answer = proxy._forward(
                operation, self.command, self.path, self._upstream_headers(), body
            )
        except (OSError, http.client.HTTPException) as error:
            LOGGER.warning("upstream call for %s failed: %s", operation, type(error).__name__)
            self._send(_plain_answer(502), close=True)
            return
        if decision.fault is Fault.RESET_AFTER_FORWARD:
            self._reset()
        elif decision.fault is Fault.TRUNCATE:
            self._send_truncated(answer)
        elif decision.fault is Fault.HOLLOW:
            self._send(_hollow(answer), close=self.close_connection)
        else:
            self._send(answer, close=self.close_connection)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _relay

    def _upstream_headers(self) -> list[tuple[str, str]]:
        return [
            (name, value)
            for name, value in self.headers.items()
            if name.lower() not in _HOP_BY_HOP and name.lower() not in _REQUEST_ONLY_DROPPED
        ]

    def _head(self, answer: _Answer, content_length: int | str | None, close: bool) -> bytes:
        lines = [f"HTTP/1.1 {answer.status} {answer.reason}"]
        lines += [f"{n}: {v}" for n, v in answer.headers if n.lower() not in _HOP_BY_HOP]
        if content_length is not None:
            lines.append(f"Content-Length: {content_length}")
        if close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, answer: _Answer, *, close: bool) -> None:
        if self.command == "HEAD" or answer.status in (204, 304) or answer.status < 200:
            # No body follows; a HEAD answer keeps the length upstream declared.
            declared = next((v for n, v in answer.headers if n.lower() == "content-length"), None)
            payload = self._head(answer, declared if self.command == "HEAD" else None, close)
        else:
            payload = self._head(answer, len(answer.body), close) + answer.body
        if close:
            self.close_connection = True
        try:
            self.wfile.write(payload)
        except OSError:
            # The client gave up (e.g. its read timeout fired during a delay).
            self.close_connection = True

    def _send_truncated(self, answer: _Answer) -> None:
        self.close_connection = True
        head = self._head(answer, len(answer.body), close=False)
        # An empty body cannot be cut: cut the head instead, the answer still breaks off.
        payload = head + answer.body[: len(answer.body) // 2] if answer.body else head[:-4]
        with contextlib.suppress(OSError):
            self.wfile.write(payload)

    def _reset(self) -> None:
        """Close with SO_LINGER 0: the client gets an RST and not a byte of the answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket only really closes once rfile, its last reference, is closed too.
        self.rfile.close()
        self.connection.close()


def _plain_answer(status: int) -> _Answer:
    reason = http.client.responses.get(status, "Error")
    return _Answer(status, reason, [("Content-Type", "text/plain")], reason.encode("ascii"))


def _hollow(answer: _Answer) -> _Answer:
    content_type = next(
        (v for n, v in answer.headers if n.lower() == "content-type"), _DEFAULT_JSON_TYPE
    )
    headers = [
        (n, v)
        for n, v in answer.headers
        if n.lower() not in _HOLLOW_DROPPED and n.lower() != "content-type"
    ]
    headers.append(("Content-Type", content_type))
    if any(n.lower() == "x-amz-crc32" for n, _ in answer.headers):
        # DynamoDB clients check this; a well-formed hollow answer carries the right one.
        headers.append(("x-amz-crc32", str(zlib.crc32(HOLLOW_BODY))))
    return _Answer(200, "OK", headers, HOLLOW_BODY)


# -- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local.fault_proxy",
        description="Fault-injecting proxy on 127.0.0.1 in front of a loopback AWS emulator. "
        "Prints its URL as the first line of stdout; stops after --lifetime-seconds or on "
        "SIGINT/SIGTERM, then prints the counts per operation and fault to stderr.",
    )
    parser.add_argument("--listen-port", type=int, default=0, help="0 (default): a free port")
    parser.add_argument("--upstream", required=True, help="http://127.0.0.1:<port> of moto")
    parser.add_argument("--mode", choices=[f.value for f in Fault], default=Fault.PASS.value)
    parser.add_argument("--rate", type=float, help="share of matching requests faulted, 0..1")
    parser.add_argument("--seed", type=int, help="default: a random seed, printed to stderr")
    parser.add_argument("--max-delay", type=float, default=3.0, help="seconds, for --mode delay")
    parser.add_argument(
        "--operations", help="comma-separated operation names the policy applies to (default all)"
    )
    parser.add_argument("--lifetime-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.mode != Fault.PASS.value and args.rate is None:
        parser.error("--rate is required with a --mode other than pass")
    if args.rate is not None and not 0.0 <= args.rate <= 1.0:
        parser.error("--rate must be within [0, 1]")
    if args.lifetime_seconds <= 0:
        parser.error("--lifetime-seconds must be > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    operations = None
    if args.operations:
        operations = [name.strip() for name in args.operations.split(",") if name.strip()]
    try:
        proxy = FaultProxy(
            args.upstream,
            port=args.listen_port,
            mode=args.mode,
            rate=args.rate or 0.0,
            operations=operations,
            seed=seed,
            max_delay=args.max_delay,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot listen on {LISTEN_HOST}:{args.listen_port}: {error}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with proxy:
        # First line of stdout: the URL, for whoever started this process.
        print(proxy.url, flush=True)
        print(
            f"fault proxy: mode={proxy.mode.value} rate={proxy.rate} seed={seed} "
            f"operations={','.join(sorted(operations)) if operations else 'all'} "
            f"lifetime={args.lifetime_seconds}s",
            file=sys.stderr,
            flush=True,
        )
        stop.wait(args.lifetime_seconds)
    stats = proxy.stats()
    for (operation, fault), number in sorted(stats.counts.items()):
        print(f"fault proxy: {operation} {fault} {number}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
