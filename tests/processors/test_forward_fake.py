"""The forwarding processor against a processor with books: the sandbox's test cards, one charge
per idempotency key, a lost answer found again by its key (what the model test relies on)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from card_tokens.cards import Card
from card_tokens.forwarding_processor import ForwardingProcessor
from card_tokens.processor import (
    ChargeResult,
    ProcessorFailure,
    ProcessorIdempotencyConflict,
    ProcessorOutcomeUnknown,
)
from tests.processors.forward_fake import (
    CHARGE_API_KEY,
    LOOKUP_API_KEY,
    REFUSED_CARD,
    ForwardFake,
    running_forward_fake,
)
from tests.processors.https_fake import ThrowawayPki

APPROVED_CARD = "4242424242424242"
KEY = "idem-1"


@pytest.fixture(scope="module")
def pki() -> ThrowawayPki:
    return ThrowawayPki.generate()


@pytest.fixture
def fake(pki: ThrowawayPki) -> Iterator[ForwardFake]:
    with running_forward_fake(pki) as running:
        yield running


def adapter(
    fake: ForwardFake, charge_document: dict[str, Any] | None = None
) -> ForwardingProcessor:
    return ForwardingProcessor.from_secrets(
        charge_document or fake.charge_document, fake.lookup_document, fake.allowed_hosts
    )


def pay(
    processor: ForwardingProcessor, pan: str = APPROVED_CARD, *, amount: int = 1250
) -> ChargeResult:
    card = Card(pan=pan, exp_month=12, exp_year=2031, cvv="123", brand="visa")
    return processor.charge(
        card=card, amount=amount, currency="EUR", idempotency_key=KEY, payment_id="pay_1"
    )


@pytest.mark.parametrize(
    ("pan", "outcome", "decline_code"),
    [
        (APPROVED_CARD, "approved", None),
        ("4000000000000002", "declined", "card_declined"),
        ("4000000000009995", "declined", "insufficient_funds"),
    ],
)
def test_a_test_card_gets_the_sandbox_s_outcome_and_the_books_hold_that_charge(
    fake: ForwardFake, pan: str, outcome: str, decline_code: str | None
) -> None:
    result = pay(adapter(fake), pan)

    assert (result.outcome, result.decline_code) == (outcome, decline_code)
    assert fake.books.charge_of(KEY) == result  # reference, amount and EUR as the books hold them
    assert fake.books.charge_count(KEY) == 1


def test_the_failure_card_is_refused_every_time_and_nothing_is_charged(fake: ForwardFake) -> None:
    processor = adapter(fake)
    for _ in range(2):
        with pytest.raises(ProcessorFailure, match="failed the charge"):
            pay(processor, REFUSED_CARD)

    assert fake.books.attempts[KEY] == 2
    assert fake.books.charge_of(KEY) is None
    assert processor.find_charge(KEY) is None


def test_a_replay_gets_the_first_answer_and_charges_once(fake: ForwardFake) -> None:
    processor = adapter(fake)
    first = pay(processor)

    assert pay(processor) == first
    assert (fake.books.attempts[KEY], fake.books.charge_count(KEY)) == (2, 1)


def test_the_key_reused_for_another_amount_is_a_conflict_and_charges_nothing_more(
    fake: ForwardFake,
) -> None:
    processor = adapter(fake)
    first = pay(processor)

    with pytest.raises(ProcessorIdempotencyConflict, match=r"\(409\)"):
        pay(processor, amount=999)
    assert fake.books.charge_of(KEY) == first
    assert fake.books.charge_count(KEY) == 1


def test_a_lost_answer_is_in_doubt_and_the_lookup_then_finds_the_charge(
    fake: ForwardFake,
) -> None:
    processor = adapter(fake)
    fake.books.lose_answers(1)

    with pytest.raises(ProcessorOutcomeUnknown, match="answer lost"):
        pay(processor)
    booked = fake.books.charge_of(KEY)
    assert booked is not None  # charged, though unanswered
    assert booked.outcome == "approved"
    assert processor.find_charge(KEY) == booked
    # The reconciler, holding the lookup secret alone, finds it too.
    reconciler = ForwardingProcessor.from_secrets(None, fake.lookup_document, fake.allowed_hosts)
    assert reconciler.find_charge(KEY) == booked
    # A resend replays the charge instead of making a second one.
    assert pay(processor) == booked
    assert fake.books.charge_count(KEY) == 1


def test_a_key_with_no_charge_is_none(fake: ForwardFake) -> None:
    assert adapter(fake).find_charge("never-used") is None


def test_concurrent_resends_under_one_key_charge_once(fake: ForwardFake) -> None:
    processor = adapter(fake)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: pay(processor), range(6)))

    assert len(set(results)) == 1
    assert (fake.books.attempts[KEY], fake.books.charge_count(KEY)) == (6, 1)


def test_the_lookup_api_key_cannot_charge(fake: ForwardFake) -> None:
    swapped = {**fake.charge_document, "headers": {"Authorization": f"Bearer {LOOKUP_API_KEY}"}}

    with pytest.raises(ProcessorFailure, match=r"\(401\)"):
        pay(adapter(fake, swapped))
    assert fake.books.attempts[KEY] == 0
    assert f"Bearer {CHARGE_API_KEY}" not in str(fake.lookup_document)


def test_reset_empties_the_books(fake: ForwardFake) -> None:
    pay(adapter(fake))
    fake.books.lose_answers(3)
    fake.books.reset()

    assert fake.books.charge_of(KEY) is None
    assert pay(adapter(fake)).outcome == "approved"  # answered: no answer left to lose


def test_the_fake_can_require_the_client_certificate(pki: ThrowawayPki) -> None:
    with running_forward_fake(pki, require_client_certificate=True) as fake:
        assert pay(adapter(fake)).outcome == "approved"
        without = {k: v for k, v in fake.charge_document.items() if k != "client_certificate"}
        with pytest.raises((ProcessorFailure, ProcessorOutcomeUnknown)):
            pay(adapter(fake, without))
        assert fake.books.charge_count(KEY) == 1
