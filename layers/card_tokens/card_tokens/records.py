"""What the service stores: token records and payment records."""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

TokenStatus = Literal["issued", "claimed", "used"]
PaymentStatus = Literal["pending", "approved", "declined"]


def epoch_seconds() -> int:
    """The service's clock (injected as `clock=` where tests need another time)."""
    return int(time.time())


def iso_utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def payment_id_for(jti: str) -> str:
    """One payment per token, by construction: a retry lands on the same payment record."""
    digest = hashlib.sha256(b"payment:" + jti.encode("ascii")).digest()[:15]
    return "pay_" + base64.b32encode(digest).decode("ascii").lower()


@dataclass(frozen=True, repr=False)
class TokenRecord:
    jti: str
    status: TokenStatus
    brand: str
    last4: str
    expires_at: int
    encrypted_data_key: bytes | None = None  # gone once the token has been authorized

    def __repr__(self) -> str:
        return f"TokenRecord(status={self.status!r}, brand={self.brand!r})"


@dataclass(frozen=True)
class PaymentRecord:
    payment_id: str
    status: PaymentStatus
    amount: int
    currency: str
    reference: str | None
    brand: str
    last4: str
    decline_code: str | None
    created_at: str

    def authorized(self, *, approved: bool, decline_code: str | None) -> PaymentRecord:
        return replace(
            self,
            status="approved" if approved else "declined",
            decline_code=None if approved else decline_code,
        )

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

    @classmethod
    def from_response(cls, document: dict[str, Any]) -> PaymentRecord:
        return cls(
            payment_id=document["payment_id"],
            status=document["status"],
            amount=int(document["amount"]),
            currency=document["currency"],
            reference=document["reference"],
            brand=document["card"]["brand"],
            last4=document["card"]["last4"],
            decline_code=document["decline_code"],
            created_at=document["created_at"],
        )
