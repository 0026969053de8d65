"""An external processor's credentials: read per role, rebuilt on change, never an answer."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from card_tokens.cards import Card
from card_tokens.errors import ServiceUnavailable
from card_tokens.processor import ChargeResult, ProcessorOutcomeUnknown
from card_tokens.processor_credentials import CredentialedProcessor, ProcessorSecrets

API_KEY = "sk_test_51SecretValueThatMustNeverBeLogged"
APPROVED = ChargeResult("approved", None, "ch_1", 1500, "EUR")


class Recorder:
    """An adapter that remembers the secrets it was built from and answers approved."""

    lookup_lag_seconds = 7

    def __init__(self, secrets: ProcessorSecrets) -> None:
        self.secrets = secrets

    def worst_case_seconds(self) -> float:
        return 3.0

    def charge(self, **_: Any) -> ChargeResult:
        return APPROVED

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        return APPROVED


class Secrets:
    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {
            "charge": {"api_key": API_KEY},
            "lookup": {"api_key": "rk_test_lookup"},
        }
        self.reads: list[str] = []
        self.down = False

    def fetch(self, secret_id: str) -> dict[str, Any]:
        self.reads.append(secret_id)
        if self.down:
            raise ServiceUnavailable("secretsmanager")
        return self.values[secret_id]


@pytest.fixture
def secrets() -> Secrets:
    return Secrets()


def credentialed(secrets: Secrets, *, charges: bool) -> CredentialedProcessor:
    return CredentialedProcessor(
        Recorder,
        charge_secret_id="charge" if charges else None,
        lookup_secret_id="lookup",
        fetch=secrets.fetch,
    )


def charge(processor: CredentialedProcessor) -> ChargeResult:
    card = Card(pan="4242424242424242", exp_month=12, exp_year=2030, cvv="123", brand="visa")
    return processor.charge(
        card=card, amount=1500, currency="EUR", idempotency_key="jti", payment_id="pay_1"
    )


def built_from(processor: CredentialedProcessor) -> ProcessorSecrets:
    assert processor._built is not None
    adapter = processor._built[1]
    assert isinstance(adapter, Recorder)
    return adapter.secrets


def test_the_payment_function_reads_both_secrets_and_the_reconciler_only_the_lookup_one(
    secrets: Secrets,
) -> None:
    paying = credentialed(secrets, charges=True)
    assert charge(paying) == APPROVED
    both = ProcessorSecrets(secrets.values["charge"], secrets.values["lookup"])
    assert built_from(paying) == both
    secrets.reads.clear()
    looking = credentialed(secrets, charges=False)
    assert looking.find_charge("jti") == APPROVED
    assert looking.lookup_lag_seconds == 7
    assert set(secrets.reads) == {"lookup"}
    assert built_from(looking) == ProcessorSecrets(None, secrets.values["lookup"])


def test_the_adapter_is_kept_while_its_secrets_are_unchanged_and_rebuilt_when_rolled(
    secrets: Secrets,
) -> None:
    paying = credentialed(secrets, charges=True)
    charge(paying)
    first = paying._built
    charge(paying)
    assert paying._built is first
    secrets.values["charge"] = {"api_key": "sk_test_rolled"}
    charge(paying)
    assert built_from(paying).charge == {"api_key": "sk_test_rolled"}


def test_unreadable_credentials_are_a_503_before_a_charge_and_no_answer_before_a_lookup(
    secrets: Secrets,
) -> None:
    paying = credentialed(secrets, charges=True)
    secrets.down = True
    with pytest.raises(ServiceUnavailable):
        charge(paying)
    # Never "no charge": the payment stays in doubt rather than being given back.
    with pytest.raises(ProcessorOutcomeUnknown):
        paying.find_charge("jti")


def test_unusable_credentials_are_a_503_and_their_value_reaches_no_log(
    secrets: Secrets, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(documents: ProcessorSecrets) -> Recorder:
        raise ValueError(f"bad api_key {documents.charge}")  # a careless parser's message

    paying = CredentialedProcessor(
        refuse, charge_secret_id="charge", lookup_secret_id="lookup", fetch=secrets.fetch
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(ServiceUnavailable) as raised:
        charge(paying)
    assert raised.value.dependency == "processor"
    assert "processor credentials unusable" in caplog.text
    assert API_KEY not in caplog.text
    assert API_KEY not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
