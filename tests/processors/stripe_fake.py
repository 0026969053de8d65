"""A local fake of the three Stripe endpoints StripeProcessor uses, checked against Stripe's spec.

Every request it receives and every response it sends is validated against the vendored subset
of stripe/openapi (vectors/stripe/spec3.subset.json); a mismatch is recorded in `violations`
(tests assert it stays empty) and the request gets a 400, as Stripe's own validation would.
Idempotency follows Stripe's documented rules: the same key and parameters replay the first
response; the same key with other parameters is a 400 idempotency_error.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jsonschema import Draft202012Validator

SPEC_PATH = Path(__file__).parent / "vectors" / "stripe" / "spec3.subset.json"
API_KEY = "sk_test_fake_0123456789"

# Stripe's documented test cards: PAN -> (decline_code, message); absent = approved.
DECLINING_CARDS = {
    "4000000000000002": ("generic_decline", "Your card was declined."),
    "4000000000009995": ("insufficient_funds", "Your card has insufficient funds."),
    "4000000000000069": ("expired_card", "Your card has expired."),
}
_SEARCH = re.compile(r"metadata\['(?P<name>[a-z_]+)'\]:'(?P<value>[A-Za-z0-9_-]+)'")
_KEY = re.compile(r"(?P<name>[^\[\]]+)(?P<path>(?:\[[^\[\]]*\])*)")


def _openapi_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable` is not JSON Schema: make it an explicit null alternative."""
    if isinstance(node, list):
        return [_openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _openapi_to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


class StripeSpec:
    def __init__(self, path: Path = SPEC_PATH) -> None:
        self.document = _openapi_to_json_schema(json.loads(path.read_text(encoding="utf-8")))
        self._components = self.document["components"]

    def _errors(self, schema: dict[str, Any], instance: Any) -> list[str]:
        rooted = {**schema, "components": self._components}
        validator = Draft202012Validator(rooted)
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in validator.iter_errors(instance)
        ]

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        item = self.document["paths"].get(path)
        return item.get(method.lower()) if item else None

    def form_schema(self, operation: dict[str, Any]) -> dict[str, Any]:
        content = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]
        return content["schema"]

    def request_errors(
        self, method: str, operation: dict[str, Any], params: dict[str, Any]
    ) -> list[str]:
        # Stripe's spec gives GETs an empty form body too: their parameters are in the query.
        if method == "POST":
            schema = self.form_schema(operation)
            return self._errors(schema, coerce(params, schema))
        errors = []
        known = {p["name"]: p for p in operation.get("parameters", [])}
        for name in params:
            if name not in known:
                errors.append(f"{name}: unknown query parameter")
        for name, parameter in known.items():
            if name not in params:
                if parameter.get("required"):
                    errors.append(f"{name}: required")
                continue
            schema = parameter["schema"]
            errors += self._errors(schema, coerce(params[name], schema))
        return errors

    def response_errors(self, operation: dict[str, Any], status: int, body: Any) -> list[str]:
        responses = operation["responses"]
        response = responses.get(str(status), responses["default"])
        return self._errors(response["content"]["application/json"]["schema"], body)


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


def coerce(value: Any, schema: dict[str, Any]) -> Any:
    """Form values are strings: give them the type the schema names, so the schema can judge."""
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            candidate = coerce(value, option)
            if not Draft202012Validator(option).is_valid(candidate) and "$ref" not in option:
                continue
            return candidate
        return value
    kind = schema.get("type")
    if isinstance(value, str):
        if kind == "integer" and re.fullmatch(r"-?[0-9]+", value):
            return int(value)
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
        return value
    if kind == "object" and isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            k: coerce(v, properties.get(k, extra if isinstance(extra, dict) else {}))
            for k, v in value.items()
        }
    if kind == "array" and isinstance(value, list):
        return [coerce(v, schema.get("items", {})) for v in value]
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
    """State of the fake Stripe account: payment methods, intents, idempotency records."""

    spec: StripeSpec = field(default_factory=StripeSpec)
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
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(
        self, method: str, path: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if headers.get("authorization") != f"Bearer {API_KEY}":
            return 401, _error("invalid_request_error", "Invalid API Key provided."), {}
        version = headers.get("stripe-version")
        if version != self.spec.document["info"]["version"]:
            self.violations.append(f"{method} {path}: Stripe-Version {version} is not the spec's")
        operation = self.spec.operation(method, path)
        if operation is None:
            self.violations.append(f"{method} {path}: not an operation of the vendored subset")
            return 404, _error("invalid_request_error", "Unrecognized request URL."), {}
        errors = self.spec.request_errors(method, operation, params)
        if errors:
            self.violations.extend(f"request {method} {path}: {e}" for e in errors)
            return 400, _error("invalid_request_error", "Invalid request."), {}
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
        problems = self.spec.response_errors(operation, status, body)
        self.violations.extend(f"response {method} {path} {status}: {p}" for p in problems)
        return status, body, {}

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
            "payment_method_types": params.get("payment_method_types", ["card"]),
            "last_payment_error": None,
            "charges": {"object": "list", "data": [], "has_more": False, "url": "/v1/charges"},
            "status": "succeeded",
        }
        self._searchable_at[intent["id"]] = time.monotonic() + self.search_lag_seconds
        decline = DECLINING_CARDS.get(method["_number"])
        if decline is None:
            intent["amount_received"] = intent["amount"]
            self.payment_intents[intent["id"]] = intent
            return 200, intent
        decline_code, message = decline
        error = {
            "type": "card_error",
            "code": "expired_card" if decline_code == "expired_card" else "card_declined",
            "decline_code": decline_code,
            "message": message,
        }
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = error
        self.payment_intents[intent["id"]] = intent
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
def running_stripe_fake(lifetime_seconds: float = 120.0) -> Iterator[StripeFake]:
    """The fake on 127.0.0.1 at a free port; it stops on exit, or by itself after its lifetime."""
    fake = StripeFake()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(fake))
    server.daemon_threads = True
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    watchdog = threading.Timer(lifetime_seconds, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield fake
    finally:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
