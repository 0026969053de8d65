"""Strict parsing of API Gateway (REST API, payload 1.0) request bodies and the request models."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from card_tokens.errors import (
    InvalidAmount,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedCurrency,
    UnsupportedMediaType,
)
from card_tokens.merchants import Caller
from card_tokens.printable import is_printable_text
from card_tokens.strict_json import JsonRejected, parse_strict_json

MAX_BODY_BYTES = 16 * 1024
MAX_AMOUNT = 99_999_999
# Our requests are flat objects; anything deeper is hostile (and costly to walk).
MAX_JSON_DEPTH = 4
MAX_REFERENCE = 64
# ISO 4217 codes the sandbox processor settles; amounts are in each currency's minor unit.
SUPPORTED_CURRENCIES = frozenset(
    {"AUD", "CAD", "CHF", "CZK", "DKK", "EUR", "GBP", "JPY", "NOK", "PLN", "SEK", "USD"}
)
CURRENCY_LIST = ", ".join(sorted(SUPPORTED_CURRENCIES))
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# An unknown field's name is echoed only when it cannot carry a card number or a token.
_SAFE_FIELD_NAME = re.compile(r"[A-Za-z_]{1,40}")
_MEDIA_TYPE = re.compile(r"application/json\s*(;\s*charset\s*=\s*\"?utf-8\"?\s*)?", re.IGNORECASE)

# In the order the contract lists them; the refusal of an unknown field names them.
TOKEN_REQUEST_FIELDS = ("card_number", "exp_month", "exp_year", "cvv", "cardholder_name")
PAYMENT_REQUEST_FIELDS = ("token", "amount", "currency", "reference")


def header(event: dict[str, Any], name: str) -> str | None:
    """A request header by case-insensitive name.

    Payload 1.0 keeps each name as the client cased it (Content-Type, content-type, CONTENT-TYPE
    all arrive as sent). `headers` holds the last value of a header sent more than once, and
    multiValueHeaders all of them: a repeated header's values are joined with commas, as HTTP
    joins them, so a repeated Content-Type or Idempotency-Key is refused rather than one picked.
    """
    wanted = name.lower()
    multi = event.get("multiValueHeaders") or {}
    values = [
        str(value)
        for key, key_values in multi.items()
        if key.lower() == wanted
        for value in (key_values or [])
    ]
    if len(values) > 1:
        return ",".join(values)
    headers = event.get("headers") or {}
    for key, value in headers.items():
        if key.lower() == wanted and value is not None:
            return str(value)
    return values[0] if values else None


def read_json_object(event: dict[str, Any]) -> dict[str, Any]:
    """The request body as a JSON object, or the 4xx that says what is wrong with it."""
    content_type = header(event, "content-type")
    if content_type is None or not _MEDIA_TYPE.fullmatch(content_type.strip()):
        raise UnsupportedMediaType()
    body = event.get("body")
    if not isinstance(body, str) or body == "":
        raise InvalidRequest("The request body is required.")
    if len(body) > MAX_BODY_BYTES * 4 // 3 + 4:
        raise PayloadTooLarge()  # cheap early exit before decoding anything large
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("The request body is not valid base64.") from None
    else:
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    try:
        document = parse_strict_json(raw)
    except JsonRejected as rejected:
        message = {
            "duplicate_member": "The JSON body has a duplicate key.",
            "not_json": "NaN and Infinity are not JSON.",
        }.get(rejected.reason, "The request body is not valid JSON.")
        raise InvalidRequest(message) from None
    if not isinstance(document, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if _depth(document) > MAX_JSON_DEPTH:
        raise InvalidRequest("The request body is nested too deeply.")
    return document


def _depth(value: Any) -> int:
    """Nesting depth, iteratively: a hostile body cannot exhaust the stack here."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        stack.extend((child, depth + 1) for child in children)
    return deepest


def reject_unknown_fields(document: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(document) - set(allowed))
    if unknown:
        name = unknown[0]
        expected = f"the fields are {', '.join(allowed)}"
        if _SAFE_FIELD_NAME.fullmatch(name):
            raise InvalidRequest(f"Unknown field: {name}; {expected}.", field=name)
        raise InvalidRequest(f"The request has a field this endpoint does not accept; {expected}.")


@dataclass(frozen=True, repr=False)
class PaymentRequest:
    token: str
    amount: int
    currency: str
    reference: str | None

    def __repr__(self) -> str:  # the token is a bearer credential: never in a repr
        return f"PaymentRequest(amount={self.amount}, currency={self.currency!r})"


def _required(document: dict[str, Any], field: str) -> Any:
    """The field's value; absent, null or "" is `invalid_request`: "<field> is required."."""
    value = document.get(field)
    if value is None or value == "":
        raise InvalidRequest(f"{field} is required.", field=field)
    return value


def parse_payment_request(document: dict[str, Any]) -> PaymentRequest:
    reject_unknown_fields(document, PAYMENT_REQUEST_FIELDS)
    token = _required(document, "token")
    if not isinstance(token, str):
        # Any string is a token to verify: every one that fails is the same 401.
        raise InvalidRequest("token must be a string: the token from POST /tokens.", field="token")
    amount = _required(document, "amount")
    if type(amount) is not int:
        raise InvalidAmount(
            "amount must be an integer number of minor units, such as 1999 for 19.99.",
            field="amount",
        )
    if not 1 <= amount <= MAX_AMOUNT:
        raise InvalidAmount(f"amount must be from 1 to {MAX_AMOUNT} minor units.", field="amount")
    currency = _required(document, "currency")
    if not isinstance(currency, str) or currency not in SUPPORTED_CURRENCIES:  # also "eur"
        raise UnsupportedCurrency(
            f"currency must be one of {CURRENCY_LIST} (ISO 4217, in capitals).", field="currency"
        )
    reference = document.get("reference")
    if reference is not None and (
        not isinstance(reference, str)
        or not 1 <= len(reference) <= MAX_REFERENCE
        or not is_printable_text(reference)
    ):
        raise InvalidRequest(
            f"reference must be printable text of 1 to {MAX_REFERENCE} characters "
            "(no control, formatting or private-use characters).",
            field="reference",
        )
    return PaymentRequest(token=token, amount=amount, currency=currency, reference=reference)


def idempotency_key(event: dict[str, Any]) -> str | None:
    value = header(event, "idempotency-key")
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters.", field="Idempotency-Key"
        )
    return value


def caller_of(event: dict[str, Any]) -> Caller:
    """The IAM principal API Gateway authenticated (REST API, AWS_IAM), or none (the local
    stack's unsigned requests, tests)."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    arn = identity.get("userArn")
    return Caller(principal_arn=arn if isinstance(arn, str) and arn else None)


# Authorization: Bearer <credential>, the scheme case-insensitive (RFC 9110 §11.1).
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+)", re.ASCII)


@dataclass(frozen=True)
class TokenCaller:
    """Who asks for a token: the publishable key it presents, and its page's Origin."""

    publishable_key: str | None  # None: no Authorization header; "": one that is not Bearer
    origin: str | None  # None: a server-side caller


def token_caller_of(event: dict[str, Any]) -> TokenCaller:
    authorization = header(event, "authorization")
    bearer = _BEARER.fullmatch(authorization.strip()) if authorization is not None else None
    key = None if authorization is None else bearer.group(1) if bearer else ""
    return TokenCaller(publishable_key=key, origin=header(event, "origin"))
