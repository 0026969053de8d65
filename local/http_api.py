"""API Gateway REST API as a function sees it: routes, payload-format-1.0 events, responses."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
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
# template.yaml's CardTokensApi StageName (tests/unit/test_local_http_api.py checks it).
STAGE = "v1"
API = "AWS::Serverless::Api"


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def gateway_error(status: int, message: str) -> GatewayResponse:
    """A response API Gateway writes itself, in its own shape (not the service's error shape)."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return GatewayResponse(status, [("content-type", "application/json")], body)


# Unknown routes: REST APIs answer MISSING_AUTHENTICATION_TOKEN (403), which template.yaml's
# GatewayResponses turns into this 404, the shape openapi.yaml documents.
NOT_FOUND = gateway_error(404, "Not Found")
PAYLOAD_TOO_LARGE = gateway_error(413, "Request Entity Too Large")
# A function error (unhandled exception, timeout) or a malformed proxy response: a REST API's 502.
BAD_GATEWAY = gateway_error(502, "Internal server error")


@dataclass(frozen=True)
class Route:
    """One Api event of a function: `POST /tokens` → IssueTokenFunction."""

    method: str
    path: str
    function: str
    authorizer: str | None = None  # "AWS_IAM" on the SigV4-signed routes

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
    """Every Api event of every function, most specific first."""
    routes = []
    for logical_id, resource in resources_of_type(template, FUNCTION).items():
        for name, event in resource.get("Properties", {}).get("Events", {}).items():
            if event.get("Type") != "Api":
                continue
            properties = event.get("Properties", {})
            if "Path" not in properties or "Method" not in properties:
                raise NotImplementedError(
                    f"{logical_id}.{name}: an Api event needs Path and Method"
                )
            method = str(properties["Method"]).upper()
            if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
                method = "ANY"
            authorizer = (properties.get("Auth") or {}).get("Authorizer")
            routes.append(
                Route(method, str(properties["Path"]), logical_id, authorizer and str(authorizer))
            )
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
    """An id in a REST API's format: a UUID (also the x-amzn-RequestId response header)."""
    return str(uuid.uuid4())


def build_rest_event(
    *,
    method: str,
    path: str,
    resource: str,
    query_string: str = "",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    path_parameters: Mapping[str, str] | None = None,
    source_ip: str = "127.0.0.1",
    protocol: str = "HTTP/1.1",
    request_id: str | None = None,
    now: float | None = None,
    caller: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The event API Gateway (REST API, Lambda proxy, payload format 1.0) sends to a function.

    As on a custom domain mapped at its root: `path` and requestContext.path carry no stage.
    Header names keep the client's casing; `headers` holds the last value of a repeated header
    and `multiValueHeaders` all of them. With no binary media types (template.yaml sets none) a
    body is text: bytes that are not UTF-8 arrive replaced, never base64-encoded. `caller` is
    what an AWS_IAM route puts in requestContext.identity (userArn, caller, accountId, ...).
    """
    now = time.time() if now is None else now
    request_id = request_id or new_request_id()
    multi_headers: dict[str, list[str]] = {}
    names: dict[str, str] = {}  # lower-case name -> the casing first seen
    for name, value in headers:
        key = names.setdefault(name.lower(), name)
        multi_headers.setdefault(key, []).append(value)
    for name, value in (
        ("X-Forwarded-For", source_ip),
        ("X-Forwarded-Port", "443"),
        ("X-Forwarded-Proto", "https"),
        ("X-Amzn-Trace-Id", f"Root=1-{int(now):08x}-{secrets.token_hex(12)}"),
    ):
        if name.lower() not in names:
            names[name.lower()] = name
            multi_headers[name] = [value]
    single_headers = {name: values[-1] for name, values in multi_headers.items()}
    host = single_headers.get(names.get("host", "Host"), "127.0.0.1")
    domain_name = host.rsplit(":", 1)[0]
    user_agent = single_headers.get(names.get("user-agent", "User-Agent"))

    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        multi_query.setdefault(name, []).append(value)

    event: dict[str, Any] = {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": (
            {name: values[-1] for name, values in multi_query.items()} if multi_query else None
        ),
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local0",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": base64.b64encode(secrets.token_bytes(10)).decode("ascii"),
            "requestTime": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": path,
            "accountId": ACCOUNT_ID,
            "protocol": protocol,
            "stage": STAGE,
            "domainPrefix": domain_name.split(".", 1)[0],
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            # An IAM-authorized route names the signer here (`caller`); open routes leave it
            # anonymous.
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": user_agent,
                "user": None,
                **(caller or {}),
            },
            "domainName": domain_name,
            "apiId": API_ID,
        },
        "body": None if body is None else body.decode("utf-8", errors="replace"),
        "isBase64Encoded": False,
    }
    return event


_HEADER_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def response_from_lambda(result: Any) -> GatewayResponse:
    """What a REST API makes of a proxy integration's answer (payload format 1.0 rules).

    Anything but an object with a statusCode is a malformed proxy response: API Gateway's 502.
    `headers` and `multiValueHeaders` are merged, the latter winning for a name in both. With no
    binary media types, isBase64Encoded is ignored and the body goes out as the text it is.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        return BAD_GATEWAY
    try:
        status = int(result["statusCode"])
        single = {str(name): str(value) for name, value in (result.get("headers") or {}).items()}
        multi = {
            str(name): [str(value) for value in values]
            for name, values in (result.get("multiValueHeaders") or {}).items()
        }
        headers = [(name, value) for name, value in single.items() if name not in multi]
        headers += [(name, value) for name, values in multi.items() for value in values]
        body_text = result.get("body")
        if body_text is None:
            body_text = ""
        if not isinstance(body_text, str):
            raise TypeError("body must be a string")
        body = body_text.encode("utf-8", errors="surrogatepass")
    except (TypeError, ValueError, AttributeError):
        return BAD_GATEWAY
    if not 100 <= status <= 599 or any(
        not _HEADER_TOKEN.match(name) or "\r" in value or "\n" in value for name, value in headers
    ):
        return BAD_GATEWAY
    return GatewayResponse(status, headers, body)
