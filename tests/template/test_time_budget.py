"""The retry arithmetic: the worst case of every AWS call of a request fits in its timeout."""

from __future__ import annotations

import pytest

from card_tokens.aws import BOTO_CONFIG, worst_case_call_seconds
from card_tokens.issuing import AWS_CALLS_TO_ISSUE
from card_tokens.payments import AWS_CALLS_TO_PAY, CLAIM_LEASE_SECONDS
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
