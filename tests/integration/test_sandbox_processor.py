"""The sandbox processor on its DynamoDB ledger: test cards, one charge per key, the lookup."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from card_tokens.aws import dynamodb_client
from card_tokens.cards import Card, validate_card
from card_tokens.processor import (
    ChargeResult,
    ProcessorFailure,
    ProcessorIdempotencyConflict,
    ProcessorOutcomeUnknown,
    SandboxProcessor,
)
from local.provision import LocalStack
from tests.aws_faults import faults_on


def card(number: str) -> Card:
    cvv = "1234" if number.startswith("37") else "123"
    return validate_card(
        card_number=number,
        exp_month=12,
        exp_year=2030,
        cvv=cvv,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def processor(stack: LocalStack) -> SandboxProcessor:
    return SandboxProcessor(stack.environment["SANDBOX_LEDGER_TABLE_NAME"])


def new_key() -> str:
    return uuid.uuid4().hex


def charge(
    processor: SandboxProcessor, key: str, number: str = "4242424242424242", amount: int = 5
) -> ChargeResult:
    """One charge of the test card under `key`, for the payment the key's token would make."""
    return processor.charge(
        card=card(number),
        amount=amount,
        currency="EUR",
        idempotency_key=key,
        payment_id=f"pay_{key[:24]}",
    )


@pytest.mark.parametrize(
    ("number", "outcome", "code"),
    [
        ("4242424242424242", "approved", None),
        ("5555555555554444", "approved", None),
        ("378282246310005", "approved", None),
        ("4000000000000002", "declined", "card_declined"),
        ("4000000000009995", "declined", "insufficient_funds"),
    ],
)
def test_test_cards_give_their_documented_outcome(
    processor: SandboxProcessor, number: str, outcome: str, code: str | None
) -> None:
    key = new_key()
    result = charge(processor, key, number, amount=100)
    assert (result.outcome, result.decline_code) == (outcome, code)
    assert processor.find_charge(key) == result


def test_each_charge_names_its_payment_in_the_ledger(processor: SandboxProcessor) -> None:
    # The processor's books name the payment: reconciliation needs no rule to derive it.
    key = new_key()
    charge(processor, key)
    (entry,) = [e for e in processor.ledger() if e.idempotency_key == key]
    assert entry.payment_id == f"pay_{key[:24]}"


def test_the_failure_card_fails_every_time_and_charges_nothing(
    processor: SandboxProcessor,
) -> None:
    key = new_key()
    for _ in range(2):
        with pytest.raises(ProcessorFailure):
            charge(processor, key, "4000000000000119")
    assert processor.find_charge(key) is None


def test_a_repeated_idempotency_key_charges_once(processor: SandboxProcessor) -> None:
    key = new_key()
    first = charge(processor, key, amount=1)
    again = charge(processor, key, amount=1)
    assert first == again
    assert [e.idempotency_key for e in processor.ledger()].count(key) == 1
    with pytest.raises(ProcessorIdempotencyConflict):
        charge(processor, key, amount=2)


def test_a_charge_whose_answer_is_lost_is_found_by_the_resend(processor: SandboxProcessor) -> None:
    # Given the ledger write commits but its answer is lost, so botocore sends it again
    key = new_key()
    with faults_on(dynamodb_client()) as faults:
        faults.plan("PutItem", "lost")
        result = charge(processor, key)
    # Then the resend recognizes its own charge: one charge, reported as made
    assert faults.fired == [("PutItem", "lost")]
    assert result.outcome == "approved"
    assert [e.idempotency_key for e in processor.ledger()].count(key) == 1


def test_no_answer_at_all_is_an_unknown_outcome_not_a_failure(
    processor: SandboxProcessor,
) -> None:
    key = new_key()
    with faults_on(dynamodb_client()) as faults:
        faults.plan("PutItem", "lost", "lost")  # both attempts commit-or-not, no answer
        with pytest.raises(ProcessorOutcomeUnknown):
            charge(processor, key)
    # The charge exists: only a lookup could tell, which is why the caller must ask.
    assert processor.find_charge(key) is not None


def test_a_lookup_answer_cut_short_is_unknown_never_no_charge(
    processor: SandboxProcessor,
) -> None:
    key = new_key()
    charge(processor, key)
    with faults_on(dynamodb_client()) as faults:
        faults.plan("GetItem", "hollow")
        with pytest.raises(ProcessorOutcomeUnknown):
            processor.find_charge(key)
