"""API Gateway HTTP API as a function sees it: routes, payload-format-2.0 events, responses."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from local.cfn import resources_of_type
from local.intrinsics import ACCOUNT_ID
from local.provision import FUNCTION

# API Gateway's own limit on a request body; the functions enforce their smaller one (16 KiB).
MAX_REQUEST_BYTES = 10 * 1024 * 1024
API_ID = "localapi00"
STAGE = "$default"


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def gateway_error(status: int, message: str) -> GatewayResponse:
    """A response API Gateway writes itself, in its own shape (not the service's error shape)."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return GatewayResponse(status, [("content-type", "application/json")], body)


NOT_FOUND = gateway_error(404, "Not Found")
PAYLOAD_TOO_LARGE = gateway_error(413, "Request Entity Too Large")
INTERNAL_SERVER_ERROR = gateway_error(500, "Internal Server Error")


@dataclass(frozen=True)
class Route:
    """One HttpApi event of a function: `POST /tokens` → IssueTokenFunction."""

    method: str
    path: str
    function: str

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sort key: literal paths beat {variables}, which beat {greedy+}; a method beats ANY."""
        segments = self.path.split("/")[1:]
        greedy = sum(segment.endswith("+}") for segment in segments)
        variables = sum(segment.startswith("{") for segment in segments)
        return (greedy, variables, int(self.method == "ANY"))

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """The path parameters if this route serves the request, else None."""
        if self.method not in ("ANY", method):
            return None
        # "/payments/" is not "/payments": like API Gateway, a trailing slash is a segment.
        wanted = self.path.split("/")[1:]
        actual = raw_path.split("/")[1:]
        parameters: dict[str, str] = {}
        for index, segment in enumerate(wanted):
            if segment.startswith("{") and segment.endswith("+}"):
                rest = "/".join(actual[index:])
                if not rest:
                    return None
                parameters[segment[1:-2]] = unquote(rest)
                return parameters
            if index >= len(actual):
                return None
            if segment.startswith("{") and segment.endswith("}"):
                if not actual[index]:
                    return None
                parameters[segment[1:-1]] = unquote(actual[index])
            elif unquote(actual[index]) != segment:
                return None
        return parameters if len(actual) == len(wanted) else None


def routes_from_template(template: dict[str, Any]) -> list[Route]:
    """Every HttpApi event of every function, most specific first."""
    routes = []
    for logical_id, resource in resources_of_type(template, FUNCTION).items():
        for name, event in resource.get("Properties", {}).get("Events", {}).items():
            if event.get("Type") != "HttpApi":
                continue
            properties = event.get("Properties", {})
            version = str(properties.get("PayloadFormatVersion", "2.0"))
            if version != "2.0":
                raise NotImplementedError(f"{logical_id}.{name}: payload format {version}")
            if "Path" not in properties or "Method" not in properties:
                raise NotImplementedError(f"{logical_id}.{name}: the $default route")
            method = str(properties["Method"]).upper()
            if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
                method = "ANY"
            routes.append(Route(method, str(properties["Path"]), logical_id))
    return sorted(routes, key=lambda route: route.specificity)


def find_route(
    routes: Iterable[Route], method: str, raw_path: str
) -> tuple[Route, dict[str, str]] | None:
    for route in routes:
        parameters = route.match(method, raw_path)
        if parameters is not None:
            return route, parameters
    return None


def new_request_id() -> str:
    """An id in API Gateway's format (`JKJaXmPLvHcESHA=`)."""
    return base64.b64encode(secrets.token_bytes(10)).decode("ascii")


def build_http_event(
    *,
    method: str,
    raw_path: str,
    route_key: str,
    raw_query_string: str = "",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    path_parameters: Mapping[str, str] | None = None,
    source_ip: str = "127.0.0.1",
    protocol: str = "HTTP/1.1",
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The event API Gateway (HTTP API, payload format 2.0) sends to a Lambda integration."""
    now = time.time() if now is None else now
    request_id = request_id or new_request_id()
    event_headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        # Repeated headers reach the function as one comma-separated value.
        event_headers[lowered] = (
            f"{event_headers[lowered]},{value}" if lowered in event_headers else value
        )
    event_headers.setdefault("x-forwarded-for", source_ip)
    event_headers.setdefault("x-forwarded-proto", "http")
    event_headers.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{secrets.token_hex(12)}")
    domain_name = event_headers.get("host", "127.0.0.1").rsplit(":", 1)[0]

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query_string,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = event_headers
    query = _query_string_parameters(raw_query_string)
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": event_headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": STAGE,
        "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now * 1000),
    }
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        try:
            event["body"] = body.decode("utf-8")
            event["isBase64Encoded"] = False
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


def _query_string_parameters(raw_query_string: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for name, value in parse_qsl(raw_query_string, keep_blank_values=True):
        parameters[name] = f"{parameters[name]},{value}" if name in parameters else value
    return parameters


_HEADER_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def response_from_lambda(result: Any) -> GatewayResponse:
    """What API Gateway makes of a handler's return value (payload format 2.0 rules)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # No statusCode: API Gateway infers a 200 JSON response with the value as its body.
        inferred = result if isinstance(result, str) else json.dumps(result)
        return GatewayResponse(200, [("content-type", "application/json")], inferred.encode())
    try:
        status = int(result["statusCode"])
        headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
        headers += [("set-cookie", str(cookie)) for cookie in result.get("cookies") or []]
        body_text = result.get("body") or ""
        if not isinstance(body_text, str):
            raise TypeError("body must be a string")
        body = (
            base64.b64decode(body_text, validate=True)
            if result.get("isBase64Encoded")
            else body_text.encode("utf-8")
        )
    except (TypeError, ValueError):
        return INTERNAL_SERVER_ERROR
    if not 100 <= status <= 599 or any(
        not _HEADER_TOKEN.match(name) or "\r" in value or "\n" in value for name, value in headers
    ):
        return INTERNAL_SERVER_ERROR
    return GatewayResponse(status, headers, body)
