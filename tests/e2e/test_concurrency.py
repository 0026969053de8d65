"""Concurrency over HTTP against the local stack: one token, many requests, exactly one charge.

The local stack runs each function as Lambda does, in several execution environments (worker
processes, each with its own caches) at once, all against one AWS emulator. So these races are
real: racing requests run in different processes, and their conditional writes meet in the
emulator as they would in DynamoDB. Each race test also checks, through the stack's local-only
/_local/environments, that more than one environment served it.
"""

from __future__ import annotations

import http.client
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

from card_tokens_client.api import Reply
from local.emulator import local_aws_environment
from local.intrinsics import REGION
from local.stack import ENVIRONMENTS_PATH, LEDGER_PATH
from tests.cards import VISA
from tests.e2e.stack_process import RunningLocalStack
from tests.support import moto_server

PARALLEL = 8
CONNECTIONS = 128
PAYMENTS = "ProcessPaymentFunction"


def ledger(local_stack: RunningLocalStack) -> list[dict[str, Any]]:
    reply = local_stack.api.request("GET", LEDGER_PATH)
    assert reply.status == 200
    charges: list[dict[str, Any]] = reply.json()["charges"]
    return charges


def charges_for(local_stack: RunningLocalStack, payment_id: str) -> int:
    return sum(1 for charge in ledger(local_stack) if charge["payment_id"] == payment_id)


def invocations_by_environment(
    local_stack: RunningLocalStack, function: str = PAYMENTS
) -> dict[int, int]:
    """Environment number → invocations it served, for one function of the running stack."""
    reply = local_stack.api.request("GET", ENVIRONMENTS_PATH)
    assert reply.status == 200
    environments = reply.json()["functions"][function]["environments"]
    return {environment["number"]: environment["invocations"] for environment in environments}


def environments_that_served(before: dict[int, int], after: dict[int, int]) -> set[int]:
    return {number for number, count in after.items() if count > before.get(number, 0)}


def in_parallel(calls: list[Callable[[], Reply]]) -> list[Reply]:
    # All calls wait for one another, so they reach the stack together.
    barrier = threading.Barrier(len(calls))

    def together(call: Callable[[], Reply]) -> Reply:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(together, calls))


def race_for_one_token(local_stack: RunningLocalStack) -> tuple[list[Reply], set[int]]:
    """Eight different payments race for one token; the replies, the environments that ran them."""
    token = local_stack.issue_token()
    before = invocations_by_environment(local_stack)
    replies = in_parallel(
        [
            lambda amount=amount: local_stack.pay(token, amount=amount)
            for amount in range(1, PARALLEL + 1)
        ]
    )
    return replies, environments_that_served(before, invocations_by_environment(local_stack))


def test_parallel_payments_with_one_token_and_different_bodies_charge_once(
    local_stack: RunningLocalStack,
) -> None:
    # Given one token, When eight different payments race for it
    replies, environments = race_for_one_token(local_stack)
    # Then they ran in more than one execution environment
    assert len(environments) > 1, "the race ran in one environment: it did not race"
    # and one is paid and the others are refused as a second use
    statuses = Counter(reply.status for reply in replies)
    assert statuses == {201: 1, 409: PARALLEL - 1}
    assert {r.error_code for r in replies if r.status == 409} == {"token_already_used"}
    paid = next(reply.json() for reply in replies if reply.status == 201)
    assert charges_for(local_stack, paid["payment_id"]) == 1


def test_parallel_retries_with_one_idempotency_key_charge_once(
    local_stack: RunningLocalStack,
) -> None:
    token = local_stack.issue_token()
    key = f"race-{uuid.uuid4()}"
    before = invocations_by_environment(local_stack)
    replies = in_parallel([lambda: local_stack.pay(token, idempotency_key=key)] * PARALLEL)
    assert len(environments_that_served(before, invocations_by_environment(local_stack))) > 1
    # Each gets the payment, or a 503 that says when to retry (a transaction conflict in AWS)
    paid = [reply.json() for reply in replies if reply.status == 201]
    assert paid, [reply.status for reply in replies]
    assert all(payment == paid[0] for payment in paid)
    for reply in replies:
        assert reply.status == 201 or (reply.status == 503 and "retry-after" in reply.headers)
    # and their retries get that same payment: never token_already_used, never a second charge
    for reply in replies:
        if reply.status != 201:
            retry = local_stack.pay(token, idempotency_key=key)
            assert retry.status == 201
            assert retry.json() == paid[0]
    assert charges_for(local_stack, paid[0]["payment_id"]) == 1


def test_each_execution_environment_is_a_process_of_its_own(local_stack: RunningLocalStack) -> None:
    # Given a race that kept several environments of the payment function busy
    race_for_one_token(local_stack)
    # Then each environment is its own process, and the stack never used more than its limit
    report = local_stack.api.request("GET", ENVIRONMENTS_PATH).json()["functions"][PAYMENTS]
    pids = [environment["pid"] for environment in report["environments"]]
    assert len(pids) > 1
    assert len(set(pids)) == len(pids)
    assert local_stack.process.pid not in pids
    assert report["peak_busy"] > 1
    assert len(pids) <= report["max_environments"]


def test_128_concurrent_connections_are_all_answered_without_a_reset(
    local_stack: RunningLocalStack,
) -> None:
    # Given 128 clients, each with its own open connection
    connections = [
        http.client.HTTPConnection("127.0.0.1", local_stack.port, timeout=60)
        for _ in range(CONNECTIONS)
    ]
    barrier = threading.Barrier(CONNECTIONS)

    def fetch_keys(connection: http.client.HTTPConnection) -> int | str:
        try:
            connection.connect()
            barrier.wait()
            # When all of them send a request at once
            connection.request("GET", "/.well-known/jwks.json")
            response = connection.getresponse()
            response.read()
            return response.status
        except OSError as error:
            return f"{type(error).__name__}: {error}"
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=CONNECTIONS) as pool:
        outcomes = list(pool.map(fetch_keys, connections))

    # Then every one is answered, none reset
    assert Counter(outcomes) == {200: CONNECTIONS}


def test_a_soak_of_concurrent_payments_reconciles_with_the_processor_ledger(
    local_stack: RunningLocalStack,
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

    before = invocations_by_environment(local_stack)
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        replies = list(pool.map(issue_and_pay, range(count)))

    assert [reply.status for reply in replies] == [201] * count, "errors during the soak"
    assert len(environments_that_served(before, invocations_by_environment(local_stack))) > 1
    charges = {charge["payment_id"]: charge for charge in ledger(local_stack)}
    for reply in replies:
        payment = reply.json()
        stored = local_stack.api.request("GET", f"/payments/{payment['payment_id']}").json()
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


# ---------------------------------------------------------------- an emulator of our own


@pytest.fixture
def own_emulator() -> Iterator[str]:
    """A moto server in this process, with the project's fixes, as a developer would run one."""
    with moto_server() as url:
        yield url


def start_on(endpoint: str, stack_name: str, log_path: Path) -> RunningLocalStack:
    options = ("--aws-endpoint-url", endpoint, "--stack-name", stack_name)
    return RunningLocalStack.start(log_path, *options, moto_port=int(endpoint.rsplit(":", 1)[1]))


def test_the_stack_provisions_on_a_given_endpoint_races_there_and_reuses_it_on_restart(
    own_emulator: str, tmp_path: Path
) -> None:
    stack_name = f"e2e-own-emulator-{uuid.uuid4().hex[:8]}"
    # Given the stack started against an emulator it did not start
    first = start_on(own_emulator, stack_name, tmp_path / "first.log")
    try:
        spare = first.issue_token()
        # When payments race for one token through it
        replies, environments = race_for_one_token(first)
    finally:
        output = first.stop_and_scan()
    # Then the race ran in several environments and charged once
    assert len(environments) > 1
    assert Counter(reply.status for reply in replies) == {201: 1, 409: PARALLEL - 1}
    # on that emulator: the stack's tables and the processor's charge are there
    aws = local_aws_environment(own_emulator)
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=own_emulator,
        region_name=REGION,
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
    )
    ledger_table = f"{stack_name}-SandboxLedgerTable"
    assert ledger_table in dynamodb.list_tables()["TableNames"]
    assert dynamodb.scan(TableName=ledger_table)["Count"] == 1
    # and the stack said where it ran, that it started no emulator, and what that means
    assert f"AWS endpoint: {own_emulator}" in output
    assert "AWS emulator (moto)" not in output
    assert "moto fixes" in output
    assert "up to 4 per function" in output

    # When it is started again against the same emulator
    second = start_on(own_emulator, stack_name, tmp_path / "second.log")
    try:
        # Then it reuses the stack there: a token of the first run pays
        assert second.pay(spare).status == 201
    finally:
        second.issued_tokens.append(spare)
        output = second.stop_and_scan()
    assert "reused the stack's resources there" in output
