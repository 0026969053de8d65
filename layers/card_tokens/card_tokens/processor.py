"""The payment processor port and the deterministic sandbox processor with its own ledger."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, Protocol

from card_tokens.cards import Card

Outcome = Literal["approved", "declined"]


class ProcessorFailure(Exception):
    """The processor did not give an answer (outage, timeout, error); nothing is known charged."""


class ProcessorIdempotencyConflict(Exception):
    """The idempotency key was already used with different charge parameters."""


@dataclass(frozen=True)
class ChargeResult:
    outcome: Outcome
    decline_code: str | None
    processor_reference: str


class PaymentProcessor(Protocol):
    def charge(
        self, *, card: Card, amount: int, currency: str, idempotency_key: str
    ) -> ChargeResult: ...


@dataclass(frozen=True)
class LedgerEntry:
    idempotency_key: str
    amount: int
    currency: str
    brand: str
    last4: str
    result: ChargeResult


# Test cards from DESIGN.md: PAN → decline code, or None for "processor fails every time".
_DECLINES: dict[str, str | None] = {
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000119": None,
}


class SandboxProcessor:
    """Deterministic: test cards decide the outcome; a repeated idempotency key charges once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ledger: dict[str, LedgerEntry] = {}

    def charge(
        self, *, card: Card, amount: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        if card.pan in _DECLINES and _DECLINES[card.pan] is None:
            raise ProcessorFailure("sandbox processor failure card")
        with self._lock:
            previous = self._ledger.get(idempotency_key)
            if previous is not None:
                if (previous.amount, previous.currency, previous.last4) != (
                    amount,
                    currency,
                    card.last4,
                ):
                    raise ProcessorIdempotencyConflict("idempotency key reused with other params")
                return previous.result
            decline_code = _DECLINES.get(card.pan)
            result = ChargeResult(
                outcome="declined" if decline_code else "approved",
                decline_code=decline_code,
                processor_reference=f"sandbox_{len(self._ledger) + 1:08d}",
            )
            self._ledger[idempotency_key] = LedgerEntry(
                idempotency_key=idempotency_key,
                amount=amount,
                currency=currency,
                brand=card.brand,
                last4=card.last4,
                result=result,
            )
            return result

    def ledger(self) -> list[LedgerEntry]:
        """Every charge made, once per idempotency key (what reconciliation compares against)."""
        with self._lock:
            return list(self._ledger.values())
