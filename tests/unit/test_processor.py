from __future__ import annotations

from datetime import UTC, datetime

import pytest

from card_tokens.cards import Card, validate_card
from card_tokens.processor import ProcessorFailure, ProcessorIdempotencyConflict, SandboxProcessor


def card(number: str) -> Card:
    cvv = "1234" if number.startswith("37") else "123"
    return validate_card(
        card_number=number,
        exp_month=12,
        exp_year=2030,
        cvv=cvv,
        now=datetime(2026, 1, 1, tzinfo=UTC),
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
    number: str, outcome: str, code: str | None
) -> None:
    result = SandboxProcessor().charge(
        card=card(number), amount=100, currency="EUR", idempotency_key="k"
    )
    assert (result.outcome, result.decline_code) == (outcome, code)


def test_the_failure_card_fails_every_time_and_charges_nothing() -> None:
    processor = SandboxProcessor()
    for _ in range(2):
        with pytest.raises(ProcessorFailure):
            processor.charge(
                card=card("4000000000000119"), amount=1, currency="EUR", idempotency_key="k"
            )
    assert processor.ledger() == []


def test_a_repeated_idempotency_key_charges_once() -> None:
    processor = SandboxProcessor()
    first = processor.charge(
        card=card("4242424242424242"), amount=1, currency="EUR", idempotency_key="k"
    )
    again = processor.charge(
        card=card("4242424242424242"), amount=1, currency="EUR", idempotency_key="k"
    )
    assert first == again
    assert len(processor.ledger()) == 1
    with pytest.raises(ProcessorIdempotencyConflict):
        processor.charge(
            card=card("4242424242424242"), amount=2, currency="EUR", idempotency_key="k"
        )
