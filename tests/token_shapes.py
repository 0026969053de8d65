"""Tokens that are not one compact JWS serialization (RFC 7515 §3.1 / §7.1, RFC 8725 §2.6), made
from a good token: the verifier (tests/unit/test_tokens.py) and the payment API
(tests/security/test_token_attacks.py) both refuse every one."""

from __future__ import annotations

import json
from collections.abc import Callable


def _segments(token: str) -> list[str]:
    return token.split(".")


def _flattened_json(token: str) -> str:
    header, payload, signature = _segments(token)
    return json.dumps({"protected": header, "payload": payload, "signature": signature})


def _general_json(token: str) -> str:
    header, payload, signature = _segments(token)
    return json.dumps(
        {"payload": payload, "signatures": [{"protected": header, "signature": signature}]}
    )


def _standard_base64(token: str) -> str:
    """The standard alphabet where the token has url-safe characters, or one appended."""
    if "-" in token or "_" in token:
        return token.replace("-", "+").replace("_", "/")
    return token + "+"


MALFORMED_SERIALIZATIONS: dict[str, Callable[[str], str]] = {
    "1-segment": lambda t: _segments(t)[0],
    "2-segments": lambda t: ".".join(_segments(t)[:2]),
    "4-segments": lambda t: t + ".e30",  # "{}"
    "4-segments-opaque": lambda t: t + ".AAAA",
    "5-segments": lambda t: t + ".e30.e30",
    "5-segments-opaque": lambda t: t + ".AAAA.AAAA",
    "padded-header": lambda t: _segments(t)[0] + "=." + ".".join(_segments(t)[1:]),
    "padded-signature": lambda t: t + "=",
    "padded-signature-2": lambda t: t + "==",
    "base64-not-url": lambda t: t.replace("-", "+").replace("_", "/") + "+/",
    "base64-not-url-in-place": _standard_base64,
    "leading-whitespace": lambda t: " " + t,
    "whitespace-after-a-dot": lambda t: t.replace(".", ". ", 1),
    "json-flattened": _flattened_json,
    "json-general": _general_json,
    "json-wrapped": lambda t: json.dumps({"payload": t}),
    "oversized": lambda t: t + "A" * 9000,
}
