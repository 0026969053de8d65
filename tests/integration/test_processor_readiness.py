"""Before a charge: the processor's credentials readable, and time for its worst case; after
a lost answer: "no charge" trusted only once the processor's lookup can be.

Neither failure before a charge may burn the token: the answer is a 503 with nothing sent to
the processor, the token is given back, and the same token pays once the cause is gone.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import pytest

from card_tokens.errors import PaymentInProgress, ServiceUnavailable
from card_tokens.merchants import Caller
from card_tokens.payments import CLAIM_LEASE_SECONDS
from card_tokens.processor import ChargeResult, ProcessorOutcomeUnknown, SandboxProcessor
from card_tokens.reconciliation import Reconciler
from card_tokens.records import epoch_seconds
from card_tokens.request_body import PaymentRequest
from card_tokens.wiring import cashier, payment_processor
from local.provision import LocalStack
from tests.flows import Invoke, assert_503, body, new_token, payment_event
from tests.integration.test_iam_calls import OnlyTheseTokens
from tests.integration.test_payment_faults import jti_of, token_item


@dataclasses.dataclass
class Guarded:
    """The sandbox behind a stand-in for credentials or a slow processor's worst case."""

    inner: SandboxProcessor
    credentials_readable: bool = True
    worst_case: float = 1.0
    charges: int = 0

    @property
    def lookup_lag_seconds(self) -> int:
        return 0

    def worst_case_seconds(self) -> float:
        return self.worst_case

    def charge(self, **kwargs: Any) -> ChargeResult:
        if not self.credentials_readable:
            raise ServiceUnavailable("secretsmanager")
        self.charges += 1
        return self.inner.charge(**kwargs)

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        return self.inner.find_charge(idempotency_key)


@pytest.fixture
def guarded(
    stack: LocalStack, process_payment_app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> Guarded:
    sandbox = payment_processor()
    assert isinstance(sandbox, SandboxProcessor)
    processor = Guarded(sandbox)
    wired = dataclasses.replace(cashier(), processor=processor)
    monkeypatch.setattr(process_payment_app, "cashier", lambda: wired)
    return processor


@pytest.mark.parametrize(
    "cause",
    ["credentials unreadable", "no time for the processor's worst case"],
)
def test_a_charge_that_cannot_start_is_a_503_and_the_token_pays_afterwards(
    stack: LocalStack, issue: Invoke, payments: Invoke, guarded: Guarded, cause: str
) -> None:
    token = new_token(issue)
    if cause == "credentials unreadable":
        guarded.credentials_readable = False
    else:
        # Longer than the whole function timeout the test invoker reports (tests/conftest.py).
        guarded.worst_case = 10_000.0
    assert_503(payments(payment_event(token)))
    assert guarded.charges == 0
    assert payment_processor().find_charge(jti_of(token)) is None
    item = token_item(stack, token)
    assert item["status"]["S"] == "issued", "the token was burnt by a charge never sent"
    assert "encrypted_data_key" in item

    guarded.credentials_readable, guarded.worst_case = True, 1.0
    paid = payments(payment_event(token))
    assert paid["statusCode"] == 201, paid["body"]
    assert body(paid)["status"] == "approved"
    assert guarded.charges == 1


@dataclasses.dataclass
class Lagging(Guarded):
    """A processor whose lookup may miss a charge for an hour (Stripe's search index)."""

    lag: int = 3600
    timeout: str | None = None  # the next charge times out "before" or "after" charging
    unindexed: set[str] = dataclasses.field(default_factory=set)  # charges its lookup misses

    @property
    def lookup_lag_seconds(self) -> int:
        return self.lag

    def charge(self, **kwargs: Any) -> ChargeResult:
        timeout, self.timeout = self.timeout, None
        if timeout == "before":
            raise ProcessorOutcomeUnknown("timed out before sending")
        result = super().charge(**kwargs)
        if timeout == "after":
            self.unindexed.add(kwargs["idempotency_key"])
            raise ProcessorOutcomeUnknown("timed out reading the answer")
        return result

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        return None if idempotency_key in self.unindexed else super().find_charge(idempotency_key)


@dataclasses.dataclass(frozen=True)
class InDoubt:
    token: str
    processor: Lagging
    lapsed: int  # a moment just past the claim's lease

    def sweep(self, at: int) -> dict[str, int]:
        """One reconciler run over this token alone, its clock at `at`."""
        states = OnlyTheseTokens(cashier().states, frozenset({jti_of(self.token)}))
        return dict(Reconciler(states=states, processor=self.processor, clock=lambda: at).run())


def in_doubt(issue: Invoke, guarded: Guarded, timeout: str) -> InDoubt:
    """A fresh token paid once, its processor timing out `timeout` ("before"/"after") charging."""
    token = new_token(issue)
    processor = Lagging(guarded.inner, timeout=timeout)
    with pytest.raises(PaymentInProgress):
        dataclasses.replace(cashier(), processor=processor).pay(
            PaymentRequest(token=token, amount=1500, currency="EUR", reference="order-1"),
            caller=Caller(),
        )
    return InDoubt(token, processor, epoch_seconds() + CLAIM_LEASE_SECONDS + 1)


def test_no_charge_is_trusted_only_after_the_lookup_lag_and_no_card_waits_for_it(
    stack: LocalStack, issue: Invoke, guarded: Guarded
) -> None:
    doubt = in_doubt(issue, guarded, "after")
    lag = doubt.processor.lag
    # Charged, but the lookup does not show it yet: "no charge" is not trusted, still in doubt.
    assert doubt.sweep(doubt.lapsed) == {"unconfirmed": 1}
    item = token_item(stack, doubt.token)
    assert item["status"]["S"] == "claimed"
    assert "encrypted_data_key" in item  # the token has not expired yet
    # Past the token's expiry, still inside the lag: the card goes, the claim stays.
    assert doubt.sweep(doubt.lapsed + lag - 1) == {"unconfirmed": 1}
    item = token_item(stack, doubt.token)
    assert item["status"]["S"] == "claimed"
    assert "encrypted_data_key" not in item, "a CVV waited for the processor's index"
    # The index catches up: the charge is recorded as the payment, card or not.
    doubt.processor.unindexed.clear()
    assert doubt.sweep(doubt.lapsed + lag - 1) == {"recorded": 1}
    assert token_item(stack, doubt.token)["status"]["S"] == "used"


def test_past_the_lookup_lag_no_charge_is_final_and_the_token_is_given_back(
    stack: LocalStack, issue: Invoke, guarded: Guarded
) -> None:
    doubt = in_doubt(issue, guarded, "before")
    assert doubt.sweep(doubt.lapsed) == {"unconfirmed": 1}
    assert doubt.sweep(doubt.lapsed + doubt.processor.lag + 1) == {"released_and_stripped": 1}
    item = token_item(stack, doubt.token)
    assert item["status"]["S"] == "expired"
    assert "encrypted_data_key" not in item
    assert guarded.inner.find_charge(jti_of(doubt.token)) is None
