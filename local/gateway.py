"""A small stand-in for API Gateway (REST API) in front of the local functions.

Each connection has its own thread; an invocation goes to the function's execution environments
(local.environments), so requests to one function, or to several, run at the same time.
"""

from __future__ import annotations

import re
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from local.environments import FunctionError, FunctionTimeoutError
from local.http_api import (
    BAD_GATEWAY,
    MAX_REQUEST_BYTES,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    GatewayResponse,
    Route,
    build_rest_event,
    find_route,
    gateway_error,
    new_request_id,
    response_from_lambda,
)
from local.http_body import BodyTooLargeError, MalformedBodyError, read_body
from local.iam import Caller, SignatureRefused

Invoke = Callable[[dict[str, Any]], Any]
# Verifies the SigV4 signature of a request to an AWS_IAM route: the signer, or None (anonymous);
# SignatureRefused for a signature API Gateway would refuse.
Authorize = Callable[[str, str, Sequence[tuple[str, str]], bytes | None], Caller | None]

# A path is logged, but a client can put anything in it: mask what could be a card number.
_LONG_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){11,}")
_BAD_REQUEST = gateway_error(400, "Bad Request")


@dataclass(frozen=True)
class Exchange:
    """One request as the access log records it: no body, no headers, no query string."""

    method: str
    path: str
    status: int
    milliseconds: float
    request_id: str

    def log_line(self) -> str:
        path = _LONG_DIGIT_RUN.sub("[digits]", self.path)
        return f"{self.method} {path} {self.status} {self.milliseconds:.1f}ms {self.request_id}"


class LocalRestApi:
    """Routes a request to a function with a payload-1.0 event and maps back the result."""

    def __init__(
        self,
        routes: Sequence[Route],
        functions: Mapping[str, Invoke],
        errors: TextIO | None = None,
        local_routes: Mapping[tuple[str, str], Callable[[], GatewayResponse]] | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        missing = {route.function for route in routes} - set(functions)
        if missing:
            raise ValueError(f"routes name functions that do not exist: {sorted(missing)}")
        self.routes = list(routes)
        self.functions = dict(functions)
        self.errors = errors
        # Local-only inspection endpoints (e.g. the sandbox ledger); never in the template.
        self.local_routes = dict(local_routes or {})
        self.authorize = authorize

    def handle(
        self,
        *,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        source_ip: str,
        protocol: str = "HTTP/1.1",
        request_id: str | None = None,
    ) -> tuple[GatewayResponse, str]:
        """The response and the request id (the same id the function sees)."""
        request_id = request_id or new_request_id()
        raw_path, _, raw_query_string = target.partition("?")
        local = self.local_routes.get((method, raw_path))
        if local is not None:
            return local(), request_id
        found = find_route(self.routes, method, raw_path)
        if found is None:
            return NOT_FOUND, request_id
        route, path_parameters = found
        caller = None
        if route.authorizer == "AWS_IAM" and self.authorize is not None:
            try:
                caller = self.authorize(method, target, headers, body)
            except SignatureRefused as refused:
                return gateway_error(403, str(refused)), request_id
        event = build_rest_event(
            method=method,
            path=raw_path,
            query_string=raw_query_string,
            resource=route.path,
            headers=headers,
            body=body,
            path_parameters=path_parameters,
            source_ip=source_ip,
            protocol=protocol,
            request_id=request_id,
            caller=None if caller is None else caller.identity(),
        )
        # A failed invocation (an unhandled error, a timeout, a runtime that exited) is a
        # function error to Lambda, which a REST API answers with its own 502.
        try:
            result = self.functions[route.function](event)
        except FunctionTimeoutError as error:
            # One line, as Lambda's "Task timed out": the environment is gone, no traceback.
            self._log_error(f"[ERROR] {error} (request {request_id})")
            return BAD_GATEWAY, request_id
        except FunctionError as error:
            # The Lambda runtime logs an unhandled error with its traceback; so does this, so
            # the log scan sees whatever an exception message would carry.
            self._log_error(
                f"[ERROR] {route.function} raised (request {request_id}):\n{error.details}"
            )
            return BAD_GATEWAY, request_id
        except Exception:  # noqa: BLE001 - a handler called in this process (tests)
            self._log_error(
                f"[ERROR] {route.function} raised (request {request_id}):\n"
                + traceback.format_exc()
            )
            return BAD_GATEWAY, request_id
        return response_from_lambda(result), request_id

    def _log_error(self, text: str) -> None:
        write_line(self.errors or sys.stderr, text.rstrip("\n"))


def write_line(stream: TextIO, line: str) -> None:
    """Write a line with one write call, so another process's output cannot split it.

    The execution environments write to the same file at the same time; print() writes the
    newline separately, and an unbuffered stream (PYTHONUNBUFFERED) passes that on as a second
    write, between which another process's line could land.
    """
    stream.write(line + "\n")
    stream.flush()


class GatewayRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 front end: reads the request, asks LocalRestApi, writes the response."""

    server: GatewayServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection does not hold a thread forever

    def _serve(self) -> None:
        started = time.perf_counter()
        request_id = new_request_id()
        try:
            body = read_body(self.rfile, self.headers, MAX_REQUEST_BYTES)
        except BodyTooLargeError:
            self.close_connection = True  # the unread body must not be parsed as a request
            self._finish(PAYLOAD_TOO_LARGE, request_id, started)
            return
        except MalformedBodyError:
            self.close_connection = True
            self._finish(_BAD_REQUEST, request_id, started)
            return
        except ConnectionError:
            self.close_connection = True  # the client left inside its body: nobody to answer
            return
        response, request_id = self.server.api.handle(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
            request_id=request_id,
        )
        self._finish(response, request_id, started)

    # Every method goes through the routes: an unrouted one is API Gateway's 404, not a 501.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, QUERY, made-up ones) too: http.server looks up do_<METHOD>.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _finish(self, response: GatewayResponse, request_id: str, started: float) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("x-amzn-RequestId", request_id)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()
        exchange = Exchange(
            self.command,
            self.path.partition("?")[0],
            response.status,
            (time.perf_counter() - started) * 1000,
            request_id,
        )
        write_line(self.server.access_log, exchange.log_line())

    def version_string(self) -> str:
        return "card-tokens-local-gateway"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Replaced by the access line in _finish, which never includes the query string."""

    def log_error(self, format: str, *args: Any) -> None:
        # The base class would echo the request line, which may carry anything a client sent.
        status = args[0] if args and isinstance(args[0], int) else "error"
        write_line(sys.stderr, f"gateway: rejected a malformed request ({status})")


class GatewayServer(ThreadingHTTPServer):
    """One daemon thread per connection; a listen backlog deep enough for bursts of clients.

    socketserver's default backlog of 5 made the kernel reset connections when 64 clients
    connected at once; 1024 holds a burst of hundreds (the kernel caps it at somaxconn).
    """

    daemon_threads = True
    request_queue_size = 1024

    def __init__(
        self, address: tuple[str, int], api: LocalRestApi, access_log: TextIO | None = None
    ) -> None:
        self.api = api
        self.access_log = access_log or sys.stdout
        super().__init__(address, GatewayRequestHandler)
