"""The payment processor port, and the deterministic sandbox processor (ledger in DynamoDB)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from card_tokens.aws import dynamodb_client, worst_case_call_seconds
from card_tokens.aws_errors import error_code
from card_tokens.cards import Card
from card_tokens.observability import logger

Outcome = Literal["approved", "declined"]


class ProcessorFailure(Exception):
    """The processor refused or failed the charge, and says nothing was charged."""


class ProcessorOutcomeUnknown(Exception):
    """No answer (timeout, lost connection, outage): the charge may or may not exist.

    Only a lookup by the idempotency key can tell; a payment in this state is in doubt.
    """


class ProcessorIdempotencyConflict(Exception):
    """The idempotency key was already used with different charge parameters."""


@dataclass(frozen=True)
class ChargeResult:
    outcome: Outcome
    decline_code: str | None
    processor_reference: str
    amount: int
    currency: str


class PaymentProcessor(Protocol):
    @property
    def lookup_lag_seconds(self) -> int:
        """How long after a charge find_charge may still answer None for it (a search index
        that lags writes): the reconciler trusts "no charge" only for attempts older than this."""
        ...

    def worst_case_seconds(self) -> float:
        """The longest one charge plus one lookup can take, every timeout and retry included.

        The cashier starts a charge only while the time left covers this (and recording it).
        """
        ...

    def charge(
        self, *, card: Card, amount: int, currency: str, idempotency_key: str, payment_id: str
    ) -> ChargeResult:
        """One charge per idempotency key: the same key and parameters give the same result.

        payment_id is metadata the processor keeps with the charge (its books name our payment).
        """
        ...

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        """The charge made under this key, or None if the processor has none.

        Raises ProcessorOutcomeUnknown when the processor cannot answer: never guess None.
        """
        ...


@dataclass(frozen=True)
class LedgerEntry:
    idempotency_key: str
    payment_id: str
    brand: str
    last4: str
    result: ChargeResult


# Test cards: PAN → decline code, or None for "the processor fails every time".
_DECLINES: dict[str, str | None] = {
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000119": None,
}


class SandboxProcessor:
    """Deterministic: test cards decide the outcome; a repeated idempotency key charges once.

    The ledger is a DynamoDB table, so every execution environment sees the same charges and
    a charge survives the container that made it, as a real processor's would. A conditional
    put makes "one charge per key" atomic; a resend of a put whose answer was lost finds its
    own entry and returns it, as a real processor's idempotency does.
    """

    lookup_lag_seconds = 0  # a consistent read sees every charge at once

    def __init__(self, ledger_table: str) -> None:
        self._table = ledger_table

    def worst_case_seconds(self) -> float:
        return 2 * worst_case_call_seconds()  # a PutItem and a GetItem

    def charge(
        self, *, card: Card, amount: int, currency: str, idempotency_key: str, payment_id: str
    ) -> ChargeResult:
        if card.pan in _DECLINES and _DECLINES[card.pan] is None:
            raise ProcessorFailure("sandbox processor failure card")
        decline_code = _DECLINES.get(card.pan)
        result = ChargeResult(
            outcome="declined" if decline_code else "approved",
            decline_code=decline_code,
            processor_reference=f"sandbox_{idempotency_key}",
            amount=amount,
            currency=currency,
        )
        entry = LedgerEntry(idempotency_key, payment_id, card.brand, card.last4, result)
        try:
            dynamodb_client().put_item(
                TableName=self._table,
                Item=_ledger_item(entry),
                ConditionExpression="attribute_not_exists(idempotency_key)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise _unknown("PutItem", error_code(error)) from None
            stored: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
            if stored is None:
                raise _unknown("PutItem", "no_item_returned") from None
            try:
                previous = _ledger_entry(stored)
            except (KeyError, ValueError):
                raise _unknown("PutItem", "incomplete_answer") from None
            if (previous.result.amount, previous.result.currency, previous.last4) != (
                amount,
                currency,
                card.last4,
            ):
                raise ProcessorIdempotencyConflict(
                    "idempotency key reused with other params"
                ) from None
            return previous.result
        except BotoCoreError as error:
            raise _unknown("PutItem", type(error).__name__) from None
        return result

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        try:
            response = dynamodb_client().get_item(
                TableName=self._table,
                Key={"idempotency_key": {"S": idempotency_key}},
                ConsistentRead=True,
                ReturnConsumedCapacity="TOTAL",
            )
        except ClientError as error:
            raise _unknown("GetItem", error_code(error)) from None
        except BotoCoreError as error:
            raise _unknown("GetItem", type(error).__name__) from None
        # DynamoDB always reports consumed capacity when asked: an answer without it was cut
        # short, and "no Item" in it does not mean "no charge".
        if "ConsumedCapacity" not in response:
            raise _unknown("GetItem", "incomplete_answer")
        item = response.get("Item")
        if item is None:
            return None
        try:
            return _ledger_entry(item).result
        except (KeyError, ValueError):
            raise _unknown("GetItem", "incomplete_answer") from None

    def ledger(self) -> list[LedgerEntry]:
        """Every charge made, once per idempotency key (what reconciliation compares against)."""
        entries: list[LedgerEntry] = []
        paginator = dynamodb_client().get_paginator("scan")
        for page in paginator.paginate(TableName=self._table, ConsistentRead=True):
            entries.extend(_ledger_entry(item) for item in page.get("Items", []))
        return entries


def _unknown(operation: str, reason: str) -> ProcessorOutcomeUnknown:
    logger.warning("sandbox ledger unavailable", extra={"operation": operation, "reason": reason})
    return ProcessorOutcomeUnknown(f"sandbox ledger {operation} failed: {reason}")


def _ledger_item(entry: LedgerEntry) -> dict[str, Any]:
    result = entry.result
    item: dict[str, Any] = {
        "idempotency_key": {"S": entry.idempotency_key},
        "payment_id": {"S": entry.payment_id},
        "brand": {"S": entry.brand},
        "last4": {"S": entry.last4},
        "outcome": {"S": result.outcome},
        "processor_reference": {"S": result.processor_reference},
        "amount": {"N": str(result.amount)},
        "currency": {"S": result.currency},
    }
    if result.decline_code is not None:
        item["decline_code"] = {"S": result.decline_code}
    return item


def _ledger_entry(item: dict[str, Any]) -> LedgerEntry:
    outcome = item["outcome"]["S"]
    if outcome not in ("approved", "declined"):
        raise ValueError("unknown outcome in the sandbox ledger")
    return LedgerEntry(
        idempotency_key=item["idempotency_key"]["S"],
        payment_id=item["payment_id"]["S"],
        brand=item["brand"]["S"],
        last4=item["last4"]["S"],
        result=ChargeResult(
            outcome=outcome,
            decline_code=item["decline_code"]["S"] if "decline_code" in item else None,
            processor_reference=item["processor_reference"]["S"],
            amount=int(item["amount"]["N"]),
            currency=item["currency"]["S"],
        ),
    )
