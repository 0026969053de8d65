"""Concurrency over HTTP against the local stack: one token, many requests, exactly one charge.

The local stack runs one invocation at a time (the functions share one process), so these tests
race requests through the HTTP server, Powertools idempotency and the token claim in the order
the server admits them; the interleavings inside one invocation are covered by the fault tests.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.stack import LEDGER_PATH
from tests.e2e.stack_process import VISA, LocalStack, Reply

pytestmark = pytest.mark.e2e

PARALLEL = 8


def ledger(local_stack: LocalStack) -> list[dict[str, Any]]:
    reply = local_stack.request("GET", LEDGER_PATH)
    assert reply.status == 200
    charges: list[dict[str, Any]] = reply.json()["charges"]
    return charges


def charges_for(local_stack: LocalStack, payment_id: str) -> int:
    return sum(1 for charge in ledger(local_stack) if charge["payment_id"] == payment_id)


def in_parallel(calls: list[Any]) -> list[Reply]:
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_parallel_payments_with_one_token_and_different_bodies_charge_once(
    local_stack: LocalStack,
) -> None:
    # Given one token, When eight different payments race for it
    token = local_stack.issue_token()
    replies = in_parallel(
        [lambda amount=amount: local_stack.pay(token, amount=amount) for amount in range(1, 9)]
    )
    # Then one is paid and the others are refused as a second use
    statuses = Counter(reply.status for reply in replies)
    assert statuses == {201: 1, 409: PARALLEL - 1}
    assert {r.error_code for r in replies if r.status == 409} == {"token_already_used"}
    paid = next(reply.json() for reply in replies if reply.status == 201)
    assert charges_for(local_stack, paid["payment_id"]) == 1


def test_parallel_retries_with_one_idempotency_key_charge_once(local_stack: LocalStack) -> None:
    token = local_stack.issue_token()
    key = f"race-{uuid.uuid4()}"
    replies = in_parallel([lambda: local_stack.pay(token, idempotency_key=key)] * PARALLEL)
    # Each gets the payment, or is told the first is still in progress (409 + Retry-After)
    payments = {reply.json()["payment_id"] for reply in replies if reply.status == 201}
    assert len(payments) == 1
    for reply in replies:
        assert reply.status == 201 or (
            reply.status == 409
            and reply.error_code == "request_in_progress"
            and "retry-after" in reply.headers
        )
    assert charges_for(local_stack, payments.pop()) == 1


def test_a_soak_of_concurrent_payments_reconciles_with_the_processor_ledger(
    local_stack: LocalStack,
) -> None:
    # Bounded: SOAK_PAYMENTS (make soak raises it) payments by 8 workers, each its own token.
    count = int(os.environ.get("SOAK_PAYMENTS", "40"))
    cards = [
        VISA,
        {**VISA, "card_number": "5555 5555 5555 4444"},
        {**VISA, "card_number": "4000 0000 0000 0002"},
        {**VISA, "card_number": "3782 822463 10005", "cvv": "1234"},
    ]

    def issue_and_pay(index: int) -> Reply:
        token = local_stack.issue_token(cards[index % len(cards)])
        return local_stack.pay(token, amount=100 + index, idempotency_key=f"soak-{uuid.uuid4()}")

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        replies = list(pool.map(issue_and_pay, range(count)))

    assert [reply.status for reply in replies] == [201] * count, "errors during the soak"
    charges = {charge["payment_id"]: charge for charge in ledger(local_stack)}
    for reply in replies:
        payment = reply.json()
        stored = local_stack.request("GET", f"/payments/{payment['payment_id']}").json()
        charge = charges[payment["payment_id"]]
        assert stored == payment
        assert (stored["status"], stored["decline_code"]) == (
            charge["outcome"],
            charge["decline_code"],
        )
        assert (stored["amount"], stored["currency"], stored["card"]["last4"]) == (
            charge["amount"],
            charge["currency"],
            charge["last4"],
        )
