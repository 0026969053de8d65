"""A local fake of the three Stripe endpoints StripeProcessor uses, checked against our schemas.

Every request it receives (form or query, and the Stripe-Version / Idempotency-Key headers) and
every response it sends is validated against tests/processors/stripe_schemas.py, which
`make stripe-spec-check` holds to Stripe's published OpenAPI document; a mismatch is recorded in
`violations` (tests assert it stays empty) and the request gets a 400, as Stripe's own validation
would. Idempotency follows Stripe's documented rules: the same key and parameters replay the
first response; the same key with other parameters is a 400 idempotency_error.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jsonschema import Draft202012Validator

from card_tokens.processor import ChargeResult
from tests.processors.serving import serving
from tests.processors.stripe_schemas import HEADERS, REQUESTS, Schema, response_schema

API_KEY = "sk_test_fake_0123456789"
# A restricted key allowed to read PaymentIntents and nothing else (the reconciler's).
LOOKUP_API_KEY = "rk_test_fake_lookup_0123456789"


@dataclass(frozen=True)
class StripeTestCard:
    stripe_code: str  # the error's code
    decline_code: str | None  # the issuer's reason, when there is one
    message: str
    # What the contract says of it: a decline code, or None when nothing is charged at all.
    contract_code: str | None


# Stripe's documented test cards; any other number is approved.
TEST_CARDS = {
    "4000000000000002": StripeTestCard(
        "card_declined", "generic_decline", "Your card was declined.", "card_declined"
    ),
    "4000000000009995": StripeTestCard(
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
        "insufficient_funds",
    ),
    "4000000000000069": StripeTestCard(
        "expired_card", "expired_card", "Your card has expired.", "card_declined"
    ),
    "4000000000000119": StripeTestCard(
        "processing_error",
        None,
        "An error occurred while processing your card. Try again in a little bit.",
        None,
    ),
}
_SEARCH = re.compile(r"metadata\['(?P<name>[a-z_]+)'\]:'(?P<value>[A-Za-z0-9_-]+)'")
_KEY = re.compile(r"(?P<name>[^\[\]]+)(?P<path>(?:\[[^\[\]]*\])*)")


def schema_errors(schema: Schema, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in Draft202012Validator(schema).iter_errors(instance)
    ]


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket encoding (card[number]=..., payment_method_types[0]=card) as nested data."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        match = _KEY.fullmatch(raw_key)
        if match is None:
            raise ValueError(f"malformed parameter name {raw_key!r}")
        parts = [match["name"], *re.findall(r"\[([^\[\]]*)\]", match["path"])]
        node: Any = root
        for part, following in itertools.pairwise(parts):
            container: Any = [] if following.isdigit() or following == "" else {}
            if isinstance(node, list):
                index = int(part) if part else len(node)
                while len(node) <= index:
                    node.append(None)
                node[index] = node[index] if node[index] is not None else container
                node = node[index]
            else:
                node = node.setdefault(part, container)
        last = parts[-1]
        if isinstance(node, list):
            node.append(value) if last == "" else _set_index(node, int(last), value)
        else:
            node[last] = value
    return root


def _set_index(items: list[Any], index: int, value: Any) -> None:
    while len(items) <= index:
        items.append(None)
    items[index] = value


def coerce(value: Any, schema: Schema) -> Any:
    """Form values are strings: give them the type the schema names, so the schema can judge."""
    kind = schema.get("type")
    if isinstance(value, str):
        if kind == "integer" and re.fullmatch(r"-?[0-9]+", value):
            return int(value)
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
        return value
    if kind == "object" and isinstance(value, dict):
        properties = schema.get("properties", {})
        return {k: coerce(v, properties.get(k, {})) for k, v in value.items()}
    return value


@dataclass
class _Stored:
    method: str
    path: str
    params: dict[str, Any]
    status: int
    body: dict[str, Any]


@dataclass
class StripeFake:
    """State of the fake Stripe account: payment methods, intents, idempotency records.

    charge_of() and charge_count() read its books directly, for a test's own observation.
    """

    payment_methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, _Stored] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    requests: list[tuple[str, str, bool]] = field(default_factory=list)  # method, path, replayed
    # path -> how many of its next answers are computed, stored, then never sent
    answers_to_lose: dict[str, int] = field(default_factory=dict)
    # Stripe's search index lags writes (documented: under a minute, up to an hour in outages).
    search_lag_seconds: float = 0.0
    base_url: str = ""
    _searchable_at: dict[str, float] = field(default_factory=dict)
    _intents_per_key: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """An empty account again, for the next example; violations are kept for the end."""
        with self._lock:
            for books in (
                self.payment_methods,
                self.payment_intents,
                self.idempotency,
                self.answers_to_lose,
                self._searchable_at,
                self._intents_per_key,
            ):
                books.clear()
            self.requests.clear()
            self.search_lag_seconds = 0.0

    def charge_of(self, idempotency_key: str) -> ChargeResult | None:
        """What the books hold under this key: None when nothing was charged or declined."""
        with self._lock:
            intent = next(
                (
                    i
                    for i in self.payment_intents.values()
                    if i["metadata"].get("idempotency_key") == idempotency_key
                ),
                None,
            )
            number = self.payment_methods[intent["payment_method"]]["_number"] if intent else ""
        if intent is None:
            return None
        card = TEST_CARDS.get(number)
        if card is None:
            outcome, decline_code = "approved", None
        elif card.contract_code is None:
            return None  # a processing error: nothing charged, nothing declined
        else:
            outcome, decline_code = "declined", card.contract_code
        return ChargeResult(
            outcome, decline_code, intent["id"], intent["amount"], intent["currency"].upper()
        )

    def charge_count(self, idempotency_key: str) -> int:
        """PaymentIntents created under this key (Stripe's idempotency allows one)."""
        with self._lock:
            return self._intents_per_key[idempotency_key]

    def handle(
        self, method: str, path: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        authorization = headers.get("authorization")
        if authorization not in (f"Bearer {API_KEY}", f"Bearer {LOOKUP_API_KEY}"):
            return 401, _error("invalid_request_error", "Invalid API Key provided."), {}
        schema = REQUESTS.get((method, path))
        if schema is None:
            self.violations.append(f"{method} {path}: not an operation the adapter uses")
            return 404, _error("invalid_request_error", "Unrecognized request URL."), {}
        self.violations.extend(
            f"headers {method} {path}: {e}" for e in schema_errors(HEADERS[method], headers)
        )
        errors = schema_errors(schema, coerce(params, schema))
        if errors:
            self.violations.extend(f"request {method} {path}: {e}" for e in errors)
            return 400, _error("invalid_request_error", "Invalid request."), {}
        if method == "POST" and authorization == f"Bearer {LOOKUP_API_KEY}":
            # Stripe's answer to a restricted key without the permission: 403, nothing done.
            body = _error("invalid_request_error", "The provided key does not have access.")
            return self._answered(method, path, 403, body), body, {}
        key = headers.get("idempotency-key")
        with self._lock:
            stored = self.idempotency.get(key) if key and method == "POST" else None
            if stored is not None:
                if (stored.method, stored.path, stored.params) != (method, path, params):
                    body = _error(
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters"
                        " they were first used with.",
                    )
                    return 400, body, {}
                self.requests.append((method, path, True))
                return stored.status, stored.body, {"Idempotent-Replayed": "true"}
            status, body = self._execute(path, params)
            if key and method == "POST":
                self.idempotency[key] = _Stored(method, path, params, status, body)
            self.requests.append((method, path, False))
        return self._answered(method, path, status, body), body, {}

    def _answered(self, method: str, path: str, status: int, body: dict[str, Any]) -> int:
        problems = schema_errors(response_schema(method, path, status), body)
        self.violations.extend(f"response {method} {path} {status}: {p}" for p in problems)
        return status

    def _execute(self, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == "/v1/payment_methods":
            return 200, self._create_payment_method(params)
        if path == "/v1/payment_intents":
            return self._create_payment_intent(params)
        return 200, self._search(params)

    def _create_payment_method(self, params: dict[str, Any]) -> dict[str, Any]:
        card = params["card"]
        method = {
            "id": f"pm_{secrets.token_hex(12)}",
            "object": "payment_method",
            "type": "card",
            "created": int(time.time()),
            "livemode": False,
            "customer": None,
            "metadata": {},
            "billing_details": {"address": None, "email": None, "name": None, "phone": None},
            "card": {
                "brand": "visa",
                "exp_month": int(card["exp_month"]),
                "exp_year": int(card["exp_year"]),
                "funding": "credit",
                "last4": card["number"][-4:],
                "country": "US",
                "fingerprint": secrets.token_hex(8),
                "checks": {
                    "address_line1_check": None,
                    "address_postal_code_check": None,
                    "cvc_check": "unchecked",
                },
                "generated_from": None,
                "networks": {"available": ["visa"], "preferred": None},
                "three_d_secure_usage": {"supported": True},
                "wallet": None,
            },
        }
        # The fake keeps the number only to decide the test card's outcome, never returns it.
        self.payment_methods[method["id"]] = {**method, "_number": card["number"]}
        return method

    def _create_payment_intent(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        method = self.payment_methods.get(params.get("payment_method", ""))
        if method is None:
            return 400, _error("invalid_request_error", "No such PaymentMethod.")
        intent = {
            "id": f"pi_{secrets.token_hex(12)}",
            "object": "payment_intent",
            "amount": int(params["amount"]),
            "amount_received": 0,
            "currency": params["currency"],
            "capture_method": "automatic",
            "confirmation_method": "automatic",
            "created": int(time.time()),
            "livemode": False,
            "metadata": params.get("metadata", {}),
            "payment_method": method["id"],
            "payment_method_types": ["card"],
            "last_payment_error": None,
            "charges": {"object": "list", "data": [], "has_more": False, "url": "/v1/charges"},
            "status": "succeeded",
        }
        self._searchable_at[intent["id"]] = time.monotonic() + self.search_lag_seconds
        self._intents_per_key[intent["metadata"].get("idempotency_key", "")] += 1
        self.payment_intents[intent["id"]] = intent
        card = TEST_CARDS.get(method["_number"])
        if card is None:
            intent["amount_received"] = intent["amount"]
            return 200, intent
        error: dict[str, Any] = {"type": "card_error", "code": card.stripe_code}
        if card.decline_code is not None:
            error["decline_code"] = card.decline_code
        error["message"] = card.message
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = error
        return 402, {"error": {**error, "payment_intent": intent}}

    def _search(self, params: dict[str, Any]) -> dict[str, Any]:
        match = _SEARCH.fullmatch(params["query"])
        found = [
            intent
            for intent in self.payment_intents.values()
            if match
            and intent["metadata"].get(match["name"]) == match["value"]
            and self._searchable_at[intent["id"]] <= time.monotonic()
        ]
        limit = int(params.get("limit", 10))
        return {
            "object": "search_result",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "next_page": None,
            "url": "/v1/payment_intents/search",
        }


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def _handler_for(fake: StripeFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            if method == "POST":
                length = int(self.headers.get("Content-Length", "0"))
                pairs = parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True)
            else:
                pairs = parse_qsl(url.query, keep_blank_values=True)
            params = decode_form(pairs)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body, extra = fake.handle(method, url.path, params, headers)
            with fake._lock:
                lose = fake.answers_to_lose.get(url.path, 0) > 0
                if lose:
                    fake.answers_to_lose[url.path] -= 1
            if lose:
                self.close_connection = True
                return  # the charge stands, the client never hears of it
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(8)}")
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            return  # the request line is harmless, but nothing here needs printing

    return Handler


@contextmanager
def running_stripe_fake(lifetime_seconds: float = 600.0) -> Iterator[StripeFake]:
    """The fake on 127.0.0.1 at a free port; it stops on exit, or by itself after its lifetime."""
    fake = StripeFake()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(fake))
    server.daemon_threads = True
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    with serving(server, lifetime_seconds):
        yield fake
