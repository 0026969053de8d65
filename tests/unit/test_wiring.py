"""The composition root picks the processor by configuration, and refuses one it does not know."""

from __future__ import annotations

from typing import Any

import pytest

from card_tokens import config, wiring
from card_tokens.config import ConfigurationError, PaymentStoreSettings
from card_tokens.errors import ServiceUnavailable
from card_tokens.forwarding import ForwardingSettingsInvalid
from card_tokens.forwarding_processor import ForwardingProcessor
from card_tokens.key_store import KEYS
from card_tokens.processor import SandboxProcessor
from card_tokens.processor_credentials import ProcessorSecrets
from card_tokens.stripe_processor import StripeProcessor

STORE_ENVIRONMENT = {
    "TOKEN_TABLE_NAME": "tokens",
    "PAYMENT_TABLE_NAME": "payments",
    "IDEMPOTENCY_TABLE_NAME": "idempotency",
    "SANDBOX_LEDGER_TABLE_NAME": "ledger",
}


def store_settings(monkeypatch: pytest.MonkeyPatch, processor: str | None) -> PaymentStoreSettings:
    for name, value in STORE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    if processor is None:
        monkeypatch.delenv("PAYMENT_PROCESSOR", raising=False)
    else:
        monkeypatch.setenv("PAYMENT_PROCESSOR", processor)
    return config.reconciler_settings.__wrapped__()  # not the cached settings of another test


@pytest.mark.parametrize("processor", [None, "", "sandbox"])
def test_the_sandbox_is_the_default_processor(
    monkeypatch: pytest.MonkeyPatch, processor: str | None
) -> None:
    settings = store_settings(monkeypatch, processor)
    assert settings.processor == "sandbox"
    built = wiring.processor_for(settings, charge_secret_id=None)
    assert isinstance(built, SandboxProcessor)
    assert built._table == "ledger"


def test_an_unknown_processor_fails_with_the_names_it_knows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROCESSOR_LOOKUP_SECRET_ID", "acme-lookup")
    settings = store_settings(monkeypatch, "acme")
    with pytest.raises(
        ConfigurationError,
        match=r"PAYMENT_PROCESSOR must be one of forward, sandbox, stripe, got 'acme'",
    ):
        wiring.processor_for(settings, charge_secret_id=None)


@pytest.mark.parametrize("processor", ["stripe", "forward"])
def test_an_external_processor_without_its_lookup_secret_fails_the_cold_start(
    monkeypatch: pytest.MonkeyPatch, processor: str
) -> None:
    monkeypatch.delenv("PROCESSOR_LOOKUP_SECRET_ID", raising=False)
    with pytest.raises(ConfigurationError, match="PROCESSOR_LOOKUP_SECRET_ID"):
        store_settings(monkeypatch, processor)


def test_another_processor_plugs_in_through_the_registry_with_its_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROCESSOR_LOOKUP_SECRET_ID", "acme-lookup")
    settings = store_settings(monkeypatch, "acme")
    read: list[str] = []

    def fetch(secret_id: str) -> dict[str, Any]:
        read.append(secret_id)
        return {"secret": secret_id}

    monkeypatch.setattr(KEYS, "fetch_secret_json", fetch)
    built: list[ProcessorSecrets] = []
    acme = SandboxProcessor("acme-ledger")

    def build(_: PaymentStoreSettings, secrets: ProcessorSecrets) -> SandboxProcessor:
        built.append(secrets)
        return acme

    monkeypatch.setitem(wiring.PROCESSORS, "acme", build)
    paying = wiring.processor_for(settings, charge_secret_id="acme-charge")
    assert paying.lookup_lag_seconds == acme.lookup_lag_seconds
    assert built == [ProcessorSecrets({"secret": "acme-charge"}, {"secret": "acme-lookup"})]
    # The reconciler's: built from the lookup secret alone, the charge secret never read.
    read.clear()
    wiring.processor_for(settings, charge_secret_id=None).worst_case_seconds()
    assert read == ["acme-lookup"]
    assert built[-1] == ProcessorSecrets(None, {"secret": "acme-lookup"})


@pytest.mark.parametrize(("raw", "seconds"), [(None, 60), ("", 60), ("0", 0), ("300", 300)])
def test_the_registry_cache_bound_is_a_setting(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, seconds: int
) -> None:
    if raw is None:
        monkeypatch.delenv("MERCHANT_CACHE_SECONDS", raising=False)
    else:
        monkeypatch.setenv("MERCHANT_CACHE_SECONDS", raw)
    assert config._merchant_cache_seconds() == seconds
    directory = wiring.merchant_directory(f"registry-{seconds}-{raw}", seconds)
    assert directory._max_age == seconds


@pytest.mark.parametrize("raw", ["-1", "301", "soon"])
def test_a_registry_cache_bound_out_of_range_fails_the_cold_start(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("MERCHANT_CACHE_SECONDS", raw)
    with pytest.raises(ConfigurationError, match="MERCHANT_CACHE_SECONDS"):
        config._merchant_cache_seconds()


def test_stripe_charges_with_the_charge_secret_and_the_reconciler_only_looks_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROCESSOR_LOOKUP_SECRET_ID", "lookup")
    settings = store_settings(monkeypatch, "stripe")
    charge, lookup = {"api_key": "sk_test_charging"}, {"api_key": "rk_test_looking"}
    paying = wiring.PROCESSORS["stripe"](settings, ProcessorSecrets(charge, lookup))
    looking = wiring.PROCESSORS["stripe"](settings, ProcessorSecrets(None, lookup))
    assert isinstance(paying, StripeProcessor)
    assert isinstance(looking, StripeProcessor)
    assert paying._charges
    assert not looking._charges
    assert looking.lookup_lag_seconds == 3600


def test_forward_takes_its_allow_list_from_the_deployment_not_from_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROCESSOR_LOOKUP_SECRET_ID", "lookup")
    monkeypatch.setenv("FORWARD_ALLOWED_HOSTS", "processor.example")
    settings = store_settings(monkeypatch, "forward")
    charge = {
        "charge": {
            "url": "https://processor.example/charges",
            "template": {"number": "{{card.number}}"},
            "rules": [{"http_status": [201], "outcome": "approved"}],
        }
    }
    lookup: dict[str, Any] = {}
    built = wiring.PROCESSORS["forward"](settings, ProcessorSecrets(charge, lookup))
    assert isinstance(built, ForwardingProcessor)
    elsewhere = {"charge": charge["charge"] | {"url": "https://elsewhere.example/charges"}}
    with pytest.raises(ForwardingSettingsInvalid, match="allow-list"):
        wiring.PROCESSORS["forward"](settings, ProcessorSecrets(elsewhere, lookup))


@pytest.mark.parametrize(
    ("processor", "document"),
    [("stripe", {}), ("stripe", {"api_key": "pk_test_publishable"}), ("forward", {"charge": 1})],
)
def test_an_unusable_processor_secret_is_a_503_never_a_crash(
    monkeypatch: pytest.MonkeyPatch, processor: str, document: dict[str, Any]
) -> None:
    monkeypatch.setenv("PROCESSOR_LOOKUP_SECRET_ID", "lookup")
    monkeypatch.setenv("FORWARD_ALLOWED_HOSTS", "processor.example")
    settings = store_settings(monkeypatch, processor)
    monkeypatch.setattr(KEYS, "fetch_secret_json", lambda _: document)
    paying = wiring.processor_for(settings, charge_secret_id="charge")
    with pytest.raises(ServiceUnavailable):
        paying.worst_case_seconds()
