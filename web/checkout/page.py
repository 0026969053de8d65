"""The checkout page's static files and their security headers, for the local stack and Lambda.

`python -m local.stack` serves these files at GET / through `page_response`; on AWS the same
module is the handler of the optional CheckoutPageFunction (template Parameter CheckoutPage),
so the page gets the same bytes and the same headers in both places.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

PAGE_DIRECTORY = Path(__file__).resolve().parent

# URL path → (file in this folder, Content-Type). Only these files are served: never page.py.
PAGE_FILES: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}

# The page takes card data: no inline script or style, no third-party origin, no framing (a
# framed card form is a clickjacking target), no referrer, and nothing cached anywhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
)


# The page's configuration: the merchant's publishable key, which app.js sends to POST /tokens.
# On AWS the function's environment holds it; the local stack passes the demo merchant's.
PUBLISHABLE_KEY_VARIABLE = "CHECKOUT_PUBLISHABLE_KEY"
_PUBLISHABLE_KEY = re.compile(r"pk_[a-z2-7]{24}", re.ASCII)
_KEY_SLOT = b'<meta name="card-tokens-publishable-key" content="">'


def page_response(
    path: str, publishable_key: str | None = None
) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """Status, headers and body of one page file, or None when `path` is not one of them.

    index.html carries `publishable_key`, if it has the key's form (it lands in HTML).
    """
    entry = PAGE_FILES.get(path)
    if entry is None:
        return None
    file_name, content_type = entry
    body = (PAGE_DIRECTORY / file_name).read_bytes()
    if publishable_key and _PUBLISHABLE_KEY.fullmatch(publishable_key) and path == "/":
        body = body.replace(_KEY_SLOT, _KEY_SLOT.replace(b'""', f'"{publishable_key}"'.encode()))
    return 200, [("content-type", content_type), *SECURITY_HEADERS], body


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway (REST API, payload 1.0) GET routes of the page: one file per route.

    `resource` is the route as declared (never the stage or a base path). The files are text
    and go out as text: the API declares no binary media types, so a REST API would send a
    base64 body as the base64 text itself.
    """
    found = page_response(str(event.get("resource", "")), os.environ.get(PUBLISHABLE_KEY_VARIABLE))
    if found is None:  # only reachable if a route is added without a file behind it
        return {
            "statusCode": 404,
            "headers": {"content-type": "application/json"},
            "body": '{"message":"Not Found"}',
        }
    status, headers, body = found
    return {
        "statusCode": status,
        "headers": dict(headers),
        "body": body.decode("utf-8"),
        "isBase64Encoded": False,
    }
