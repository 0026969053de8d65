"""What the service stores: token records and payment records."""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

TokenStatus = Literal["issued", "claimed", "used", "expired"]
PaymentStatus = Literal["approved", "declined"]
# The contract's decline codes (openapi.yaml): every processor's own code maps onto one of them.
DECLINE_CODES = frozenset({"card_declined", "insufficient_funds"})


def contract_decline_code(code: object) -> str:
    """A processor's decline code as the contract names it: its own name when the contract has
    it, else card_declined. Nothing else a processor wrote (an echoed card) travels on."""
    return code if isinstance(code, str) and code in DECLINE_CODES else "card_declined"


def epoch_seconds() -> int:
    """The service's clock (injected as `clock=` where tests need another time)."""
    return int(time.time())


def iso_utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_payment_id() -> str:
    """Drawn at issue and stored with the token, so one token still has one payment, but
    nobody holding the token (its jti is readable) can work out the payment's id."""
    return "pay_" + base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()


@dataclass(frozen=True, repr=False)
class TokenRecord:
    jti: str
    status: TokenStatus
    brand: str
    last4: str
    expires_at: int
    payment_id: str  # the id its payment will have (new_payment_id)
    merchant_id: str | None = None  # None in single-caller mode
    encrypted_data_key: bytes | None = None  # gone once the token has been authorized

    def __repr__(self) -> str:
        return f"TokenRecord(status={self.status!r}, brand={self.brand!r})"


@dataclass(frozen=True)
class PaymentRecord:
    """A payment as recorded after the processor answered: approved or declined, never else."""

    payment_id: str
    status: PaymentStatus
    amount: int
    currency: str
    reference: str | None
    brand: str
    last4: str
    decline_code: str | None
    created_at: str
    merchant_id: str | None = None  # whose payment it is (None in single-caller mode)

    def to_response(self) -> dict[str, Any]:
        """The payment object of the HTTP contract."""
        return {
            "payment_id": self.payment_id,
            "status": self.status,
            "amount": self.amount,
            "currency": self.currency,
            "reference": self.reference,
            "card": {"brand": self.brand, "last4": self.last4},
            "decline_code": self.decline_code,
            "created_at": self.created_at,
        }

    def to_item(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_item(cls, values: dict[str, Any]) -> PaymentRecord:
        status = values["status"]
        if status not in ("approved", "declined"):
            raise ValueError("not a recorded payment status")
        return cls(
            payment_id=str(values["payment_id"]),
            status=status,
            amount=int(values["amount"]),
            currency=str(values["currency"]),
            reference=values.get("reference"),
            brand=str(values["brand"]),
            last4=str(values["last4"]),
            decline_code=values.get("decline_code"),
            created_at=str(values["created_at"]),
            merchant_id=values.get("merchant_id"),
        )

    def to_json(self) -> str:
        """The stored answer of an Idempotency-Key."""
        return json.dumps(self.to_item(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PaymentRecord:
        return cls.from_item(json.loads(text))
