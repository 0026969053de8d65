"""The retry arithmetic: the worst case of every AWS call of a request fits in its timeout."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from card_tokens.aws import BOTO_CONFIG, worst_case_call_seconds
from card_tokens.forwarding import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT
from card_tokens.forwarding import WORST_CASE_BUDGET_SECONDS as FORWARDING_BUDGET_SECONDS
from card_tokens.issuing import AWS_CALLS_TO_ISSUE
from card_tokens.payments import AWS_CALLS_TO_PAY, CLAIM_LEASE_SECONDS
from card_tokens.processor import SandboxProcessor
from card_tokens.stripe_processor import StripeProcessor
from local.cfn import load_template

# A REST API's integration timeout: 29 s by default, and at most without a quota increase.
API_GATEWAY_INTEGRATION_LIMIT_SECONDS = 29


def timeout_of(function: str) -> int:
    timeout: int = load_template()["Resources"][function]["Properties"]["Timeout"]
    return timeout


def test_botocore_uses_standard_retries_with_bounded_timeouts() -> None:
    assert BOTO_CONFIG.retries == {"mode": "standard", "total_max_attempts": 2}
    assert worst_case_call_seconds() == 2 * (0.5 + 1.0) + 1


@pytest.mark.parametrize(
    ("function", "calls"),
    [("IssueTokenFunction", AWS_CALLS_TO_ISSUE), ("ProcessPaymentFunction", AWS_CALLS_TO_PAY)],
)
def test_the_worst_case_ends_inside_the_function_timeout(function: str, calls: int) -> None:
    worst = calls * worst_case_call_seconds()
    # The worst case ends inside both. ProcessPaymentFunction's 29 s equals the REST API's
    # limit, so at worst API Gateway answers 504 as Lambda stops the function: the payment
    # states (claims, leases, the reconciler) hold either way (docs/reliability.md).
    assert worst < timeout_of(function) <= API_GATEWAY_INTEGRATION_LIMIT_SECONDS


def test_a_claim_outlives_the_request_that_holds_it() -> None:
    assert timeout_of("ProcessPaymentFunction") < CLAIM_LEASE_SECONDS


def _sandbox_worst_case() -> float:
    return SandboxProcessor("ledger").worst_case_seconds()


@pytest.mark.parametrize(
    ("processor", "worst_case"),
    [
        ("sandbox", _sandbox_worst_case),
        ("stripe", StripeProcessor.worst_case_seconds),
        ("forward", lambda: DEFAULT_CONNECT_TIMEOUT * 2 + DEFAULT_READ_TIMEOUT * 2),
    ],
)
def test_each_processor_s_worst_case_leaves_time_to_claim_and_to_record(
    processor: str, worst_case: Callable[[], float]
) -> None:
    """The cashier starts a charge only with time for the processor's worst case and for the
    calls after it; the claim and the card's Decrypt come before. All of it fits the timeout."""
    seconds = worst_case()
    assert seconds <= FORWARDING_BUDGET_SECONDS == 12.0
    before_charge = 2  # the claim transaction, the Decrypt (the secret and registry are cached)
    after_charge = 2  # finish, or a release
    calls = (before_charge + after_charge) * worst_case_call_seconds()
    assert calls + seconds < timeout_of("ProcessPaymentFunction")


def test_the_forwarding_defaults_are_the_budget_it_enforces() -> None:
    assert DEFAULT_CONNECT_TIMEOUT * 2 + DEFAULT_READ_TIMEOUT * 2 == FORWARDING_BUDGET_SECONDS
