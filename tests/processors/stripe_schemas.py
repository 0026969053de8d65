"""What StripeProcessor sends to Stripe and what it reads back, as JSON Schemas of our own.

Written from Stripe's API reference, for API version STRIPE_API_VERSION. Requests are closed
(additionalProperties: false): a field the adapter starts sending without a schema here is a
violation in the fake. Responses list every field the adapter (or the SDK's choice of exception)
reads, required when Stripe's spec says it is always present; the rest may come and go.
`make stripe-spec-check` checks every field, type, enum and requiredness here against Stripe's
published OpenAPI document (tests/processors/check_stripe_spec.py).
"""

from __future__ import annotations

from typing import Any

from card_tokens.stripe_processor import STRIPE_API_VERSION

Schema = dict[str, Any]

_STRING: Schema = {"type": "string"}
_INTEGER: Schema = {"type": "integer"}


def _closed(required: list[str], **properties: Schema) -> Schema:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


def _open(required: list[str], **properties: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": properties}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name}"}


# Form fields (bracket-encoded) of POST requests, query parameters of GET requests.
REQUESTS: dict[tuple[str, str], Schema] = {
    ("POST", "/v1/payment_methods"): _closed(
        ["type", "card"],
        type={"type": "string", "enum": ["card"]},
        card=_closed(
            ["number", "exp_month", "exp_year", "cvc"],
            number=_STRING,
            exp_month=_INTEGER,
            exp_year=_INTEGER,
            cvc=_STRING,
        ),
    ),
    ("POST", "/v1/payment_intents"): _closed(
        ["amount", "currency", "payment_method", "confirm", "metadata"],
        amount=_INTEGER,
        currency=_STRING,
        payment_method=_STRING,
        # Created and confirmed in one request: a PaymentIntent left unconfirmed charges nothing.
        confirm={"type": "boolean", "enum": [True]},
        metadata=_closed(
            ["payment_id", "idempotency_key"], payment_id=_STRING, idempotency_key=_STRING
        ),
    ),
    ("GET", "/v1/payment_intents/search"): _closed(
        ["query", "limit"], query=_STRING, limit=_INTEGER
    ),
}

# Header names lower-cased. Stripe's API reference: an Idempotency-Key is at most 255 characters.
_VERSION: Schema = {"type": "string", "enum": [STRIPE_API_VERSION]}
HEADERS: dict[str, Schema] = {
    "POST": _open(
        ["stripe-version", "idempotency-key"],
        **{"stripe-version": _VERSION, "idempotency-key": {"type": "string", "maxLength": 255}},
    ),
    "GET": _open(["stripe-version"], **{"stripe-version": _VERSION}),
}

DEFINITIONS: dict[str, Schema] = {
    "payment_method": _open(
        ["id", "object"], id=_STRING, object={"type": "string", "enum": ["payment_method"]}
    ),
    "payment_intent": _open(
        ["id", "object", "amount", "currency", "status"],
        id=_STRING,
        object={"type": "string", "enum": ["payment_intent"]},
        amount=_INTEGER,
        currency=_STRING,
        # Every status the spec names: one the adapter does not know would be a silent guess.
        status={
            "type": "string",
            "enum": [
                "canceled",
                "processing",
                "requires_action",
                "requires_capture",
                "requires_confirmation",
                "requires_payment_method",
                "succeeded",
            ],
        },
        # Absent or null until a confirmation fails.
        last_payment_error={"anyOf": [_ref("api_errors"), {"type": "null"}]},
    ),
    "api_errors": _open(
        ["type"],
        # The SDK picks its exception class from the type (CardError, IdempotencyError, ...).
        type={
            "type": "string",
            "enum": ["api_error", "card_error", "idempotency_error", "invalid_request_error"],
        },
        code=_STRING,
        decline_code=_STRING,
        payment_intent=_ref("payment_intent"),
    ),
    "error": _open(["error"], error=_ref("api_errors")),
    "search_result": _open(
        ["object", "data"],
        object={"type": "string", "enum": ["search_result"]},
        data={"type": "array", "items": _ref("payment_intent")},
    ),
}

# (method, path) -> HTTP status ("default": any other) -> the definition of its body.
RESPONSES: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/v1/payment_methods"): {"200": "payment_method", "default": "error"},
    ("POST", "/v1/payment_intents"): {"200": "payment_intent", "default": "error"},
    ("GET", "/v1/payment_intents/search"): {"200": "search_result", "default": "error"},
}


def rooted(schema: Schema) -> Schema:
    """A schema that can resolve #/$defs/... on its own."""
    return {**schema, "$defs": DEFINITIONS}


def response_schema(method: str, path: str, status: int) -> Schema:
    by_status = RESPONSES[(method, path)]
    return rooted(_ref(by_status.get(str(status), by_status["default"])))
