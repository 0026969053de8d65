"""CORS for POST /tokens, answered by IssueTokenFunction rather than by API Gateway.

A REST API's own CORS support (SAM's `Cors`) answers every preflight with one fixed
Access-Control-Allow-Origin, and that header can name a single origin only. CorsOrigins lists
several, so the function compares each request's Origin with the list and echoes it back only
on an exact match. A browser may POST JSON (Content-Type) with the merchant's publishable key
(Authorization: Bearer) to /tokens, and nothing else: no X-Amz-* header is ever allowed, and
/payments has no CORS at all, so no page can sign a /payments request cross-origin.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

from card_tokens.request_body import header

ALLOWED_METHODS = "POST"
ALLOWED_HEADERS = "authorization, content-type"
MAX_AGE_SECONDS = 600
# Exactly the template's CorsOrigins pattern for one origin: https (or http on localhost).
_ORIGIN = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?|http://localhost(:[0-9]{1,5})?")


class InvalidOrigins(ValueError):
    """CORS_ORIGINS names something that is not an exact origin ("*" never is)."""


def parse_origins(value: str) -> frozenset[str]:
    """CORS_ORIGINS (comma separated, possibly empty) as a set of exact origins."""
    origins = frozenset(part.strip() for part in value.split(",") if part.strip())
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise InvalidOrigins(f"CORS_ORIGINS holds {origin!r}, which is not an exact origin")
    return origins


def allowed_origin(event: dict[str, Any], origins: frozenset[str]) -> str | None:
    """The request's Origin when it is one of `origins` exactly, else None."""
    origin = header(event, "origin")
    return origin if origin is not None and origin in origins else None


def preflight_headers(event: dict[str, Any], origins: frozenset[str]) -> dict[str, str]:
    """What an OPTIONS /tokens answer allows: POST with Content-Type and Authorization, for a
    listed origin only."""
    if allowed_origin(event, origins) is None:
        return {}
    requested = (header(event, "access-control-request-method") or "").strip()
    if requested != ALLOWED_METHODS:
        return {}
    return {
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
    }


def add_cors_headers(
    response: dict[str, Any], event: dict[str, Any], origins: frozenset[str]
) -> dict[str, Any]:
    """The proxy response, with Access-Control-Allow-Origin when the Origin is listed.

    Every answer of the function gets it (errors too: a page must read its 400), and Vary:
    Origin whenever CORS is configured, so no cache serves one origin's answer to another.
    """
    if not origins:
        return response
    added = {"Vary": "Origin"}
    origin = allowed_origin(event, origins)
    if origin is not None:
        added["Access-Control-Allow-Origin"] = origin
    # Powertools writes payload-1.0 headers into multiValueHeaders; a plain dict also works.
    multi: MutableMapping[str, list[str]] | None = response.get("multiValueHeaders")
    if multi is not None:
        for name, value in added.items():
            multi[name] = [value]
    else:
        response["headers"] = {**(response.get("headers") or {}), **added}
    return response
