"""A processor with books, reached through the forwarding adapter (HTTPS, throwaway CA).

The API it implements is the one `forwarding_documents` describes to the adapter:

    POST /v1/charges  {"card": {"number", "exp_month": "03", "exp_year", "cvc"}, "amount": 1250,
                       "currency": "EUR", "idempotency_key": "...", "metadata": {"payment_id"}}
      201 {"id": "ch_…", "status": "approved", "amount", "currency": "eur", "idempotency_key"}
      402 the same with "status": "declined" and its own "decline_code" (do_not_honor, nsf)
      422 {"error": "processing_error"}          refused, nothing charged (the failure card)
      409 {"error": "idempotency_key_reused"}    the key was first used with another amount
      401 / 400                                  wrong API key / malformed: nothing charged
    POST /v1/charges/lookup  {"idempotency_key": "..."}
      200 the charge, as its charge answer reads; 404 {"error": "no_such_charge"}

One charge per idempotency key, atomic under concurrent requests: a replay with the same amount
and currency gets the first answer. Charging and looking up take different API keys, as a
processor's restricted keys do. The test cards are the sandbox's.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from card_tokens.processor import ChargeResult
from tests.processors.https_fake import Received, Reply, ThrowawayPki, https_processor

CHARGE_API_KEY = "fwd_charge_key"
LOOKUP_API_KEY = "fwd_lookup_key"
# The processor's own decline codes: the forwarding rules map them onto the contract's.
DECLINE_CODES = {"4000000000000002": "do_not_honor", "4000000000009995": "nsf"}
CONTRACT_DECLINE_CODES = {"do_not_honor": "card_declined", "nsf": "insufficient_funds"}
REFUSED_CARD = "4000000000000119"  # the processor refuses it every time, charging nothing

CHARGE_TEMPLATE = {
    "card": {
        "number": "{{card.number}}",
        "exp_month": "{{card.exp_month|text}}",  # "03": this processor wants the month as text
        "exp_year": "{{card.exp_year}}",
        "cvc": "{{card.cvv}}",
    },
    "amount": "{{amount}}",
    "currency": "{{currency}}",
    "idempotency_key": "{{idempotency_key}}",
    "metadata": {"payment_id": "{{payment_id}}"},
}


def forwarding_documents(
    port: int, pki: ThrowawayPki, *, client_certificate: bool = False
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The charge secret, the lookup secret and the allow-list that point the forwarding
    adapter at this fake: the worked example of a forwarding configuration."""
    base = f"https://127.0.0.1:{port}/v1/charges"
    trust: dict[str, Any] = {"ca_bundle_pem": pki.server_ca.certificate_pem}
    if client_certificate:
        trust["client_certificate"] = {
            "certificate_pem": pki.client.certificate_pem,
            "private_key_pem": pki.client.private_key_pem,
        }
    charge = {
        "charge": {
            "url": base,
            "template": CHARGE_TEMPLATE,
            "rules": [
                {
                    "http_status": [201],
                    "path": "status",
                    "equals": "approved",
                    "outcome": "approved",
                },
                {
                    "http_status": [402],
                    "path": "status",
                    "equals": "declined",
                    "outcome": "declined",
                },
                # The key was first used with another amount: that charge stands, not this one.
                {"http_status": [409], "outcome": "conflict"},
                # Refused, unauthorised or malformed: the processor charged nothing.
                {"http_status": [400, 401, 422], "outcome": "failed"},
            ],
            "decline_code_path": "decline_code",
            "decline_codes": {"nsf": "insufficient_funds"},
            "reference_path": "id",
        },
        "headers": {"Authorization": f"Bearer {CHARGE_API_KEY}"},
        **trust,
    }
    lookup = {
        "lookup": {
            "url": f"{base}/lookup",
            "template": {"idempotency_key": "{{idempotency_key}}"},
            "rules": [
                {
                    "http_status": [200],
                    "path": "status",
                    "equals": "approved",
                    "outcome": "approved",
                },
                {
                    "http_status": [200],
                    "path": "status",
                    "equals": "declined",
                    "outcome": "declined",
                },
                {"http_status": [404], "outcome": "failed"},  # "failed" here: no such charge
            ],
            "decline_code_path": "decline_code",
            "decline_codes": {"nsf": "insufficient_funds"},
            "reference_path": "id",
            "amount_path": "amount",
            "currency_path": "currency",
        },
        "headers": {"Authorization": f"Bearer {LOOKUP_API_KEY}"},
        "lookup_lag_seconds": 0,  # the books answer a lookup as soon as the charge is made
        **trust,
    }
    return charge, lookup, f"127.0.0.1:{port}"


@dataclass(frozen=True)
class _Booked:
    http_status: int  # 201 approved, 402 declined: replayed as first answered
    answer: dict[str, Any]


def _json(status: int, document: dict[str, Any]) -> Reply:
    return Reply(status, json.dumps(document).encode())


class ProcessorBooks:
    """The processor's state: its charges, every charge request per key, answers to lose."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._charges: list[tuple[str, _Booked]] = []  # a list, so a double shows as two
            self._answers_to_lose = 0
            self.attempts: Counter[str] = Counter()  # POST /v1/charges received, per key

    def lose_answers(self, count: int) -> None:
        """The next `count` charge requests are carried out, then their connection closes with
        no answer."""
        with self._lock:
            self._answers_to_lose = count

    def charge_count(self, idempotency_key: str) -> int:
        with self._lock:
            return sum(1 for key, _ in self._charges if key == idempotency_key)

    def charge_of(self, idempotency_key: str) -> ChargeResult | None:
        """What the books hold under the key, read directly (not through the adapter)."""
        booked = self._find(idempotency_key)
        if booked is None:
            return None
        answer = booked.answer
        return ChargeResult(
            outcome=answer["status"],
            decline_code=CONTRACT_DECLINE_CODES.get(answer.get("decline_code", "")),
            processor_reference=answer["id"],
            amount=answer["amount"],
            currency=answer["currency"].upper(),
        )

    def _find(self, idempotency_key: str) -> _Booked | None:
        with self._lock:
            return next((b for key, b in self._charges if key == idempotency_key), None)

    def answer(self, received: Received) -> Reply:
        """The fake's request handler (called on the server's threads)."""
        try:
            request = json.loads(received.body)
            key = str(request["idempotency_key"])
        except (ValueError, KeyError, TypeError):
            return _json(400, {"error": "invalid_request"})
        authorization = received.headers.get("Authorization")
        if received.path == "/v1/charges/lookup":
            if authorization != f"Bearer {LOOKUP_API_KEY}":
                return _json(401, {"error": "unauthorized"})
            booked = self._find(key)
            if booked is None:
                return _json(404, {"error": "no_such_charge"})
            return _json(200, booked.answer)
        if received.path != "/v1/charges":
            return _json(404, {"error": "no_such_endpoint"})
        if authorization != f"Bearer {CHARGE_API_KEY}":
            return _json(401, {"error": "unauthorized"})
        with self._lock:
            self.attempts[key] += 1
            reply = self._charge(key, request)
            if self._answers_to_lose:
                self._answers_to_lose -= 1
                return Reply(hang_up=True)
        return reply

    def _charge(self, key: str, request: dict[str, Any]) -> Reply:
        """Under the lock: the check for an earlier charge and the booking are one step."""
        try:
            number, amount = str(request["card"]["number"]), request["amount"]
            currency = str(request["currency"]).lower()
        except (KeyError, TypeError):
            return _json(400, {"error": "invalid_request"})
        if type(amount) is not int or amount <= 0:
            return _json(400, {"error": "invalid_request"})
        earlier = next((b for k, b in self._charges if k == key), None)
        if earlier is not None:
            if (earlier.answer["amount"], earlier.answer["currency"]) != (amount, currency):
                return _json(409, {"error": "idempotency_key_reused"})
            return _json(earlier.http_status, earlier.answer)
        if number == REFUSED_CARD:
            return _json(422, {"error": "processing_error"})
        decline_code = DECLINE_CODES.get(number)
        answer: dict[str, Any] = {
            "id": f"ch_{len(self._charges) + 1:06d}",
            "status": "declined" if decline_code else "approved",
            "amount": amount,
            "currency": currency,
            "idempotency_key": key,
        }
        if decline_code:
            answer["decline_code"] = decline_code
        booked = _Booked(402 if decline_code else 201, answer)
        self._charges.append((key, booked))
        return _json(booked.http_status, booked.answer)


@dataclass(frozen=True)
class ForwardFake:
    """A running processor with books, and the documents that point the adapter at it."""

    port: int
    books: ProcessorBooks
    charge_document: dict[str, Any]
    lookup_document: dict[str, Any]
    allowed_hosts: str


@contextmanager
def running_forward_fake(
    pki: ThrowawayPki,
    *,
    require_client_certificate: bool = False,
    lifetime: float = 120.0,
) -> Iterator[ForwardFake]:
    """On 127.0.0.1, a free port; stops when the block ends, or on its own after `lifetime`."""
    books = ProcessorBooks()
    with https_processor(
        pki,
        books.answer,
        require_client_certificate=require_client_certificate,
        lifetime=lifetime,
    ) as server:
        charge, lookup, allowed = forwarding_documents(
            server.port, pki, client_certificate=require_client_certificate
        )
        yield ForwardFake(server.port, books, charge, lookup, allowed)
