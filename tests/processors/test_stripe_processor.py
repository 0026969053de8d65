"""StripeProcessor against the local Stripe fake, whose traffic is checked against our schemas."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import stripe

from card_tokens.cards import Card
from card_tokens.config import ConfigurationError
from card_tokens.processor import (
    ChargeResult,
    ProcessorFailure,
    ProcessorIdempotencyConflict,
    ProcessorOutcomeUnknown,
)
from card_tokens.stripe_processor import StripeProcessor, StripeTimeouts, _result
from tests.processors.stripe_fake import (
    API_KEY,
    LOOKUP_API_KEY,
    StripeFake,
    running_stripe_fake,
    schema_errors,
)
from tests.processors.stripe_schemas import response_schema

APPROVED = "4242424242424242"
PROCESSING_ERROR = "4000000000000119"
# Short timeouts: a lost answer costs the test a connection reset, not the production budget.
FAST = StripeTimeouts(connect_seconds=1.0, read_seconds=1.0, max_network_retries=1)


def _card(pan: str, cvv: str = "314") -> Card:
    return Card(pan=pan, exp_month=12, exp_year=2031, cvv=cvv, brand="visa")


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    with running_stripe_fake() as running:
        yield running
    assert running.violations == []


@pytest.fixture
def processor(fake: StripeFake) -> StripeProcessor:
    return StripeProcessor(API_KEY, timeouts=FAST, api_base=fake.base_url)


def _charge(processor: StripeProcessor, pan: str, key: str, amount: int = 1999) -> ChargeResult:
    return processor.charge(
        card=_card(pan), amount=amount, currency="EUR", idempotency_key=key, payment_id="pay_1"
    )


def test_an_approved_card_is_charged_once_with_the_payment_id_in_its_metadata(
    processor: StripeProcessor, fake: StripeFake
) -> None:
    result = _charge(processor, APPROVED, "jti_approved")

    assert (result.outcome, result.decline_code, result.amount, result.currency) == (
        "approved",
        None,
        1999,
        "EUR",
    )
    (intent,) = fake.payment_intents.values()
    assert intent["id"] == result.processor_reference
    assert intent["currency"] == "eur"
    assert intent["metadata"] == {"payment_id": "pay_1", "idempotency_key": "jti_approved"}
    assert (fake.charge_of("jti_approved"), fake.charge_count("jti_approved")) == (result, 1)


@pytest.mark.parametrize(
    ("pan", "contract_code"),
    [
        ("4000000000000002", "card_declined"),  # Stripe: generic_decline
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "card_declined"),  # Stripe: expired_card
    ],
)
def test_a_stripe_decline_maps_to_the_contract_decline_code(
    processor: StripeProcessor, fake: StripeFake, pan: str, contract_code: str
) -> None:
    result = _charge(processor, pan, f"jti_{pan}")

    assert (result.outcome, result.decline_code) == ("declined", contract_code)
    assert fake.payment_intents[result.processor_reference]["status"] == "requires_payment_method"
    assert fake.charge_of(f"jti_{pan}") == result
    assert processor.find_charge(f"jti_{pan}") == result


def test_a_processing_error_is_a_processor_failure_every_time_and_nothing_is_charged(
    processor: StripeProcessor, fake: StripeFake
) -> None:
    for _ in range(2):
        with pytest.raises(ProcessorFailure):
            _charge(processor, PROCESSING_ERROR, "jti_processing")

    (intent,) = fake.payment_intents.values()
    assert intent["last_payment_error"]["code"] == "processing_error"
    assert (fake.charge_of("jti_processing"), fake.charge_count("jti_processing")) == (None, 1)
    assert processor.find_charge("jti_processing") is None


def test_a_resend_replays_stripe_s_first_answer_and_charges_nothing_more(
    processor: StripeProcessor, fake: StripeFake
) -> None:
    first = _charge(processor, APPROVED, "jti_replay")
    again = _charge(processor, APPROVED, "jti_replay")

    assert again == first
    assert fake.charge_count("jti_replay") == 1
    assert [replayed for _, _, replayed in fake.requests] == [False, False, True, True]


def test_the_same_key_with_another_amount_is_an_idempotency_conflict(
    processor: StripeProcessor, fake: StripeFake
) -> None:
    _charge(processor, APPROVED, "jti_conflict", amount=1999)

    with pytest.raises(ProcessorIdempotencyConflict):
        _charge(processor, APPROVED, "jti_conflict", amount=2500)
    assert len(fake.payment_intents) == 1


def test_another_amount_after_stripe_refused_the_card_unpaid_is_a_failure_not_a_conflict(
    processor: StripeProcessor, fake: StripeFake
) -> None:
    # Stripe keeps the refusal under the key: the retry gets an idempotency error, yet nothing
    # was charged, so the token must not be reported spent (409).
    with pytest.raises(ProcessorFailure):
        _charge(processor, PROCESSING_ERROR, "jti_refused_first", amount=1999)
    with pytest.raises(ProcessorFailure):
        _charge(processor, PROCESSING_ERROR, "jti_refused_first", amount=2500)
    assert fake.charge_of("jti_refused_first") is None


def test_a_reused_key_whose_intent_the_search_does_not_show_yet_is_in_doubt(
    processor: StripeProcessor, fake: StripeFake
) -> None:
    fake.search_lag_seconds = 60.0
    _charge(processor, APPROVED, "jti_unindexed", amount=1999)
    with pytest.raises(ProcessorOutcomeUnknown):
        _charge(processor, APPROVED, "jti_unindexed", amount=2500)
    assert fake.charge_count("jti_unindexed") == 1


def test_a_charge_whose_answers_are_lost_is_in_doubt_then_found_by_its_key(
    processor: StripeProcessor, fake: StripeFake
) -> None:
    # The PaymentMethod is answered; the charge and the SDK's retry of it are made, not heard.
    fake.answers_to_lose["/v1/payment_intents"] = 1 + FAST.max_network_retries

    with pytest.raises(ProcessorOutcomeUnknown):
        _charge(processor, APPROVED, "jti_lost")

    (intent,) = fake.payment_intents.values()
    found = processor.find_charge("jti_lost")
    assert found is not None
    assert (found.outcome, found.processor_reference, found.amount, found.currency) == (
        "approved",
        intent["id"],
        1999,
        "EUR",
    )


def test_a_charge_not_yet_indexed_is_not_found_so_none_is_no_proof_right_after_a_charge(
    processor: StripeProcessor, fake: StripeFake
) -> None:
    # Why the caller may trust "no charge" only for a payment older than the search lag.
    fake.search_lag_seconds = 3600
    _charge(processor, APPROVED, "jti_lagging")

    assert processor.find_charge("jti_lagging") is None
    assert len(fake.payment_intents) == 1


def test_no_charge_under_a_key_is_none_and_a_failing_search_is_in_doubt(
    processor: StripeProcessor, fake: StripeFake
) -> None:
    assert processor.find_charge("jti_never_charged") is None

    fake.answers_to_lose["/v1/payment_intents/search"] = 1 + FAST.max_network_retries
    with pytest.raises(ProcessorOutcomeUnknown):
        processor.find_charge("jti_never_charged")


def _intent(status: str, **fields: object) -> stripe.PaymentIntent:
    values = {"id": "pi_1", "object": "payment_intent", "amount": 5, "currency": "eur"}
    return stripe.PaymentIntent.construct_from({**values, "status": status, **fields}, API_KEY)


def test_an_intent_without_last_payment_error_is_a_plain_decline() -> None:
    # The spec lets Stripe leave the field out, not only send it as null.
    assert _result(_intent("canceled")) == ChargeResult(
        "declined", "card_declined", "pi_1", 5, "EUR"
    )


@pytest.mark.parametrize("status", ["requires_capture", "requires_confirmation"])
def test_an_intent_in_a_state_a_confirmed_charge_never_has_is_in_doubt(status: str) -> None:
    with pytest.raises(ProcessorOutcomeUnknown):
        _result(_intent(status))


def test_a_key_that_could_break_out_of_the_search_query_is_refused(
    processor: StripeProcessor,
) -> None:
    with pytest.raises(ValueError, match="not a token id"):
        processor.find_charge("x' OR metadata['payment_id']:'pay_1")


def test_the_card_never_reaches_a_log_even_with_the_sdk_at_debug(
    fake: StripeFake, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger("stripe").setLevel(logging.DEBUG)  # as a root DEBUG config would leave it
    caplog.set_level(logging.DEBUG)
    processor = StripeProcessor(API_KEY, timeouts=FAST, api_base=fake.base_url)
    pan, cvv = "4000000000009995", "987"

    processor.charge(
        card=_card(pan, cvv), amount=1999, currency="EUR", idempotency_key="jti_log", payment_id="p"
    )
    processor.find_charge("jti_log")

    captured = capsys.readouterr()
    text = caplog.text + captured.out + captured.err
    assert caplog.records, "nothing was logged: the scan would prove nothing"
    for secret in (pan, pan[:6] + pan[-4:], f"cvc%5D={cvv}", f"cvc]={cvv}"):
        assert secret not in text


def test_stripe_console_logging_is_refused(
    fake: StripeFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_LOG", "debug")

    with pytest.raises(ValueError, match="card data"):
        StripeProcessor(API_KEY, api_base=fake.base_url)


def test_a_charge_and_its_lookup_wait_on_stripe_at_most_12_seconds() -> None:
    # ProcessPaymentFunction has 29 s; its AWS calls need the rest (tests/template).
    # 3 requests x (1 s to connect + 3 s to read), no retry.
    assert StripeProcessor.worst_case_seconds() == 12.0


def test_a_retry_adds_an_attempt_and_the_sdk_s_backoff_to_each_request() -> None:
    # stripe-python sleeps 0.5 s at most before its first retry.
    once = StripeTimeouts(connect_seconds=1.0, read_seconds=3.0, max_network_retries=1)

    assert StripeProcessor.worst_case_seconds(once) == 3 * (2 * 4.0 + 0.5)


def test_a_secret_document_with_an_api_key_makes_a_working_processor(fake: StripeFake) -> None:
    processor = StripeProcessor.from_secret({"api_key": API_KEY}, api_base=fake.base_url)

    assert _charge(processor, APPROVED, "jti_secret").outcome == "approved"
    assert processor.lookup_lag_seconds == 3600


@pytest.mark.parametrize(
    "document",
    [{}, {"api_key": ""}, {"api_key": "   "}, {"api_key": 42}, {"api_key": "pk_test_publishable"}],
)
def test_a_secret_document_without_a_usable_key_is_a_configuration_error_that_quotes_nothing(
    document: dict[str, object],
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        StripeProcessor.from_secret(document)

    assert "pk_test" not in str(raised.value)
    assert "42" not in str(raised.value)


def test_a_lookup_only_key_finds_charges_and_is_refused_a_charge(fake: StripeFake) -> None:
    charging = StripeProcessor(API_KEY, timeouts=FAST, api_base=fake.base_url)
    made = _charge(charging, APPROVED, "jti_lookup_only")
    lookup = StripeProcessor.from_secret({"api_key": LOOKUP_API_KEY}, api_base=fake.base_url)

    assert lookup.find_charge("jti_lookup_only") == made
    with pytest.raises(ProcessorFailure):
        _charge(lookup, APPROVED, "jti_refused")
    assert fake.charge_count("jti_refused") == 0


def test_the_reconciler_s_adapter_refuses_a_charge_before_sending_the_card(
    fake: StripeFake,
) -> None:
    looking = StripeProcessor.from_secret(
        {"api_key": LOOKUP_API_KEY}, api_base=fake.base_url, charges=False
    )
    with pytest.raises(ProcessorFailure, match="lookup key only"):
        _charge(looking, APPROVED, "jti_never_sent")
    assert not fake.payment_methods, "the card reached Stripe"
    assert looking.find_charge("jti_never_sent") is None


def test_reset_empties_the_books_for_the_next_example(
    processor: StripeProcessor, fake: StripeFake
) -> None:
    _charge(processor, APPROVED, "jti_before_reset")

    fake.reset()

    assert (fake.charge_of("jti_before_reset"), fake.charge_count("jti_before_reset")) == (None, 0)
    assert processor.find_charge("jti_before_reset") is None


def test_the_fake_rejects_a_field_the_adapter_is_not_known_to_send(fake: StripeFake) -> None:
    status, _, _ = fake.handle(
        "POST",
        "/v1/payment_intents",
        {
            "amount": "100",
            "currency": "eur",
            "payment_method_data": {"type": "card", "card": {"number": APPROVED}},
        },
        {
            "authorization": f"Bearer {API_KEY}",
            "stripe-version": "2020-08-27",
            "idempotency-key": "k",
        },
    )

    assert status == 400
    assert any("payment_method_data" in v for v in fake.violations)
    fake.violations.clear()


def test_the_response_schema_refuses_a_status_stripe_never_sends() -> None:
    intent = {"id": "pi_1", "object": "payment_intent", "amount": 1, "currency": "eur"}
    schema = response_schema("POST", "/v1/payment_intents", 200)

    assert schema_errors(schema, {**intent, "status": "succeeded"}) == []
    assert any("status" in p for p in schema_errors(schema, {**intent, "status": "charged"}))
