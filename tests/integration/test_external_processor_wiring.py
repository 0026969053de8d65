"""An external processor configured as a deployment configures it, paid through the handlers.

PAYMENT_PROCESSOR, the two secrets' ids and FORWARD_ALLOWED_HOSTS come from the environment;
the secrets' documents from Secrets Manager (moto); the processor is the local HTTPS processor
with books (tests/processors/forward_fake.py, mTLS). What each function reads is recorded: the
payment function both secrets, the reconciler the lookup secret only.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from card_tokens import config, wiring
from card_tokens.key_store import KEYS
from card_tokens.payments import CLAIM_LEASE_SECONDS
from card_tokens.reconciliation import Reconciler
from card_tokens.records import epoch_seconds
from local.provision import LocalStack
from tests.flows import Invoke, body, new_token, payment_event
from tests.integration.test_iam_calls import OnlyTheseTokens
from tests.integration.test_payment_faults import jti_of
from tests.processors.forward_fake import ForwardFake, running_forward_fake
from tests.processors.https_fake import ThrowawayPki


def _forget_the_wiring() -> None:
    """Settings and use cases are built once per environment: a new one, as after a deploy."""
    for cached in (
        config.payment_settings,
        config.reconciler_settings,
        wiring.payment_processor,
        wiring.cashier,
        wiring.reconciler,
    ):
        cached.cache_clear()
    KEYS.reset()


@pytest.fixture
def forwarding(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardFake]:
    secrets = boto3.client("secretsmanager")
    with running_forward_fake(ThrowawayPki.generate(), require_client_certificate=True) as fake:
        ids = {}
        for name, document in (("charge", fake.charge_document), ("lookup", fake.lookup_document)):
            ids[name] = secrets.create_secret(
                Name=f"processor-{name}-{uuid.uuid4().hex}", SecretString=json.dumps(document)
            )["ARN"]
        monkeypatch.setenv("PAYMENT_PROCESSOR", "forward")
        monkeypatch.setenv("PROCESSOR_SECRET_ID", ids["charge"])
        monkeypatch.setenv("PROCESSOR_LOOKUP_SECRET_ID", ids["lookup"])
        monkeypatch.setenv("FORWARD_ALLOWED_HOSTS", fake.allowed_hosts)
        _forget_the_wiring()
        try:
            yield fake
        finally:
            monkeypatch.undo()  # the session's sandbox settings again, for the tests after
            _forget_the_wiring()


@pytest.fixture
def secrets_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    read: list[str] = []
    fetch = KEYS.fetch_secret_json

    def recording(secret_id: str, **kwargs: Any) -> dict[str, Any]:
        read.append(secret_id)
        return fetch(secret_id, **kwargs)

    monkeypatch.setattr(KEYS, "fetch_secret_json", recording)
    return read


def processor_secrets(read: list[str]) -> set[str]:
    """Which processor secrets were read, by the variable naming them (signing keys aside)."""
    variables = ("PROCESSOR_SECRET_ID", "PROCESSOR_LOOKUP_SECRET_ID")
    return {name for name in variables if os.environ[name] in read}


def _sweep(token: str, at: int) -> dict[str, int]:
    """One run of the reconciler the wiring builds, over this token alone, its clock at `at`."""
    built = wiring.reconciler()
    states = OnlyTheseTokens(built.states, frozenset({jti_of(token)}))
    return dict(Reconciler(states=states, processor=built.processor, clock=lambda: at).run())


@pytest.mark.parametrize(
    ("card", "status", "decline_code"),
    [
        ("4242 4242 4242 4242", "approved", None),
        ("4000 0000 0000 0002", "declined", "card_declined"),
        ("4000 0000 0000 9995", "declined", "insufficient_funds"),
    ],
)
def test_a_payment_is_charged_at_the_forwarding_processor_with_its_payment_id(
    issue: Invoke,
    payments: Invoke,
    process_payment_app: ModuleType,
    forwarding: ForwardFake,
    secrets_read: list[str],
    card: str,
    status: str,
    decline_code: str | None,
) -> None:
    token = new_token(issue, card_number=card)
    response = payments(payment_event(token))
    assert response["statusCode"] == 201, response["body"]
    payment = body(response)
    assert (payment["status"], payment["decline_code"]) == (status, decline_code)
    charge = forwarding.books.charge_of(jti_of(token))
    assert charge is not None
    assert (charge.outcome, charge.amount) == (status, payment["amount"])
    assert forwarding.books.charge_count(jti_of(token)) == 1
    assert processor_secrets(secrets_read) == {"PROCESSOR_SECRET_ID", "PROCESSOR_LOOKUP_SECRET_ID"}


def test_a_lost_answer_is_settled_by_the_reconciler_reading_the_lookup_secret_only(
    issue: Invoke, payments: Invoke, forwarding: ForwardFake, secrets_read: list[str]
) -> None:
    token = new_token(issue)
    forwarding.books.lose_answers(1)
    response = payments(payment_event(token))
    assert (response["statusCode"], body(response)["error"]["code"]) == (
        503,
        "payment_in_progress",
    )
    assert forwarding.books.charge_count(jti_of(token)) == 1  # charged, the answer lost

    secrets_read.clear()
    assert _sweep(token, epoch_seconds() + CLAIM_LEASE_SECONDS + 1) == {"recorded": 1}
    assert processor_secrets(secrets_read) == {"PROCESSOR_LOOKUP_SECRET_ID"}
    # The original request, again: its payment, never a second charge.
    retry = payments(payment_event(token))
    assert retry["statusCode"] == 201, retry["body"]
    assert body(retry)["status"] == "approved"
    assert forwarding.books.charge_count(jti_of(token)) == 1


def test_a_host_outside_the_allow_list_is_a_503_and_the_card_goes_nowhere(
    issue: Invoke,
    payments: Invoke,
    forwarding: ForwardFake,
    monkeypatch: pytest.MonkeyPatch,
    stack: LocalStack,
) -> None:
    # The secret names a URL the deployment never allowed: the adapter is never built.
    monkeypatch.setenv("FORWARD_ALLOWED_HOSTS", "processor.example")
    _forget_the_wiring()
    token = new_token(issue)
    response = payments(payment_event(token))
    assert (response["statusCode"], body(response)["error"]["code"]) == (
        503,
        "service_unavailable",
    )
    assert forwarding.books.attempts[jti_of(token)] == 0
    # The deployment's list again: the same token pays.
    monkeypatch.setenv("FORWARD_ALLOWED_HOSTS", forwarding.allowed_hosts)
    _forget_the_wiring()
    paid = payments(payment_event(token))
    assert paid["statusCode"] == 201, paid["body"]
