"""Faults on every AWS call of the payment path, and what must hold on stored state after each.

Two kinds of fault, at the two places they happen:
- before the call: nothing reached AWS, and every retry failed too (a botocore `before-call`
  hook, which skips botocore's retries): the request is a 503 and leaves nothing behind;
- after the call: AWS applied it and the answer was lost, or came back hollow
  (tests/aws_faults.py). botocore's real retry loop resends the request. No such fault may
  turn into a 409, a lock-out, a 500 or a second charge.
The invariants (checked after each test): at most one charge per token; a charge has a payment
record of its amount once settled; a token that was authorized has no data key.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

from card_tokens.aws import dynamodb_client, kms_client
from card_tokens.processor import ProcessorOutcomeUnknown, SandboxProcessor
from card_tokens.wiring import payment_processor as sandbox_processor
from local.provision import LocalStack
from tests.aws_faults import Fault, client_error, failing, faults_on
from tests.flows import (
    Invoke,
    assert_503,
    body,
    dynamodb_item,
    get_event,
    new_token,
    payment_event,
    token_event,
)

FAULTS: dict[str, Callable[[], Exception]] = {
    "throttled": lambda: client_error("ThrottlingException"),
    "5xx": lambda: client_error("InternalServerError", 500),
    "read-timeout": lambda: ReadTimeoutError(endpoint_url="https://aws"),
    "connect-timeout": lambda: ConnectTimeoutError(endpoint_url="https://aws"),
}


def jti_of(token: str) -> str:
    jti: str = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]
    return jti


def token_item(stack: LocalStack, token: str) -> dict[str, Any]:
    item = dynamodb_item(stack, "TOKEN_TABLE_NAME", {"jti": {"S": jti_of(token)}})
    assert item is not None
    return item


def charges_of(token: str) -> list[Any]:
    return [e for e in sandbox_processor().ledger() if e.idempotency_key == jti_of(token)]


def assert_charged_once(stack: LocalStack, token: str) -> None:
    assert len(charges_of(token)) == 1
    assert_invariants(stack, token)


def assert_invariants(stack: LocalStack, token: str) -> None:
    """What must hold for this token whatever failed."""
    charges = charges_of(token)
    assert len(charges) <= 1, "two charges for one token"
    item = token_item(stack, token)
    payment = dynamodb_item(stack, "PAYMENT_TABLE_NAME", {"payment_id": item["payment_id"]})
    if item["status"]["S"] == "used":
        assert "encrypted_data_key" not in item, "an authorized token kept its data key"
        assert payment is not None
        assert charges, "a payment record without a charge"
    if payment is not None:
        assert payment["status"]["S"] == charges[0].result.outcome
        assert int(payment["amount"]["N"]) == charges[0].result.amount
    if item["status"]["S"] == "issued":
        assert not charges, "a charged token was given back"


@pytest.fixture
def token(issue: Invoke) -> str:
    """A fresh token of the sample card, issued through the handler."""
    return new_token(issue)


def pays(payments: Invoke, token: str, **kwargs: Any) -> dict[str, Any]:
    response = payments(payment_event(token, **kwargs))
    assert response["statusCode"] == 201, response["body"]
    return response


def key_record(stack: LocalStack, key: str) -> dict[str, Any] | None:
    from card_tokens.stores import idempotency_key_id

    return dynamodb_item(
        stack, "IDEMPOTENCY_TABLE_NAME", {"id": {"S": idempotency_key_id(key, None)}}
    )


def new_key() -> str:
    return f"k-{uuid.uuid4()}"


# Every AWS call before the charge, with and without an Idempotency-Key.
BEFORE_CHARGE = [
    ("dynamodb", "UpdateItem", False),  # claim the token
    ("dynamodb", "TransactWriteItems", True),  # claim the token + the key's record
    ("dynamodb", "GetItem", True),  # read the claim back (a transaction returns no item)
    ("kms", "Decrypt", False),  # open the data key
    ("kms", "Decrypt", True),
]


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
@pytest.mark.parametrize(
    ("service", "operation", "keyed"),
    BEFORE_CHARGE,
    ids=[f"{s}-{o}-{'key' if k else 'nokey'}" for s, o, k in BEFORE_CHARGE],
)
def test_a_fault_before_the_charge_is_503_and_leaves_nothing_behind(
    token: str,
    payments: Invoke,
    stack: LocalStack,
    service: str,
    operation: str,
    keyed: bool,
    fault: str,
) -> None:
    # Given a fresh token (and a fresh key when keyed)
    key = new_key() if keyed else None
    client = dynamodb_client() if service == "dynamodb" else kms_client()
    # When one AWS call before the charge fails
    with failing(client, operation, FAULTS[fault]()) as hits:
        assert_503(payments(payment_event(token, idempotency_key=key)))
    assert hits, "the fault was never injected"
    # Then nothing was charged, the token is free again and the key is free for another body
    assert token_item(stack, token)["status"]["S"] == "issued"
    assert not charges_of(token)
    if key is not None:
        assert key_record(stack, key) is None
    # and any request can use the token: here another amount, under the same key
    pays(payments, token, idempotency_key=key, amount=777)
    assert_invariants(stack, token)


# Every write of the payment path: its answer lost once, and botocore resends it.
WRITES = [
    ("UpdateItem", False),  # claim
    ("TransactWriteItems", True),  # claim with key; then finish
    ("PutItem", False),  # the sandbox processor's ledger (the charge)
    ("PutItem", True),
]


@pytest.mark.parametrize("answer", ["lost", "hollow"])
@pytest.mark.parametrize(
    ("operation", "keyed"), WRITES, ids=[f"{o}-{'key' if k else 'nokey'}" for o, k in WRITES]
)
def test_a_write_whose_answer_is_lost_still_pays_once(
    token: str, payments: Invoke, stack: LocalStack, operation: str, keyed: bool, answer: Fault
) -> None:
    key = new_key() if keyed else None
    with faults_on(dynamodb_client()) as faults:
        faults.plan(operation, answer)
        first = payments(payment_event(token, idempotency_key=key))
    assert faults.fired == [(operation, answer)]
    # A hollow claim answer carries no claim: that attempt gives it back and answers 503.
    if first["statusCode"] == 503:
        assert (operation, answer) == ("UpdateItem", "hollow"), first["body"]
        assert_503(first)
        assert token_item(stack, token)["status"]["S"] == "issued"
        first = payments(payment_event(token, idempotency_key=key))
    assert first["statusCode"] == 201, first["body"]
    assert_charged_once(stack, token)
    # and the request's retry gets the same payment, never token_already_used
    again = pays(payments, token, idempotency_key=key)
    assert body(again) == body(first)


@pytest.mark.parametrize("keyed", [False, True], ids=["nokey", "key"])
def test_the_finishing_write_answer_lost_twice_is_in_progress_then_the_retry_gets_it(
    issue: Invoke, payments: Invoke, stack: LocalStack, keyed: bool
) -> None:
    # Given the payment is charged but neither copy of its recording gets an answer
    token = new_token(issue, card_number="4000 0000 0000 0002")  # declined: also authorized
    key = new_key() if keyed else None
    with faults_on(dynamodb_client()) as faults:
        # With a key, the first transaction is the claim: it goes through.
        faults.plan("TransactWriteItems", *(["pass"] if keyed else []), "lost", "lost")
        first = payments(payment_event(token, idempotency_key=key))
    assert faults.fired == [("TransactWriteItems", "lost")] * 2
    assert_503(first, "payment_in_progress")
    assert len(charges_of(token)) == 1
    # When another request tries the token, it is refused; the original request's retry pays
    assert payments(payment_event(token, amount=1))["statusCode"] == 409
    retry = pays(payments, token, idempotency_key=key)
    assert body(retry)["status"] == "declined"
    assert_charged_once(stack, token)


def test_a_lost_answer_to_the_claim_with_a_key_is_no_lock_out(
    token: str, payments: Invoke, stack: LocalStack
) -> None:
    # Given the claim (with its key record) commits but both its answers are lost
    key = new_key()
    with faults_on(dynamodb_client()) as faults:
        faults.plan("TransactWriteItems", "lost", "lost")
        first = payments(payment_event(token, idempotency_key=key))
    assert_503(first)
    # Then the request's retry, at once, pays: no "in progress" window to wait out
    assert body(pays(payments, token, idempotency_key=key))["status"] == "approved"
    assert_invariants(stack, token)


def test_reading_a_payment_whose_answer_is_cut_short_is_503_not_404(
    issue: Invoke, payments: Invoke
) -> None:
    payment = body(pays(payments, new_token(issue)))
    with faults_on(dynamodb_client()) as faults:
        faults.plan("GetItem", "hollow")
        assert_503(payments(get_event(payment["payment_id"])))
    assert payments(get_event(payment["payment_id"]))["statusCode"] == 200


def test_reading_a_payment_while_dynamodb_is_down_is_503(issue: Invoke, payments: Invoke) -> None:
    payment = body(pays(payments, new_token(issue)))
    with failing(dynamodb_client(), "GetItem", client_error("InternalServerError", 500)):
        assert_503(payments(get_event(payment["payment_id"])))


@pytest.fixture
def processor_that_times_out_after_charging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The charge goes through, but its answer never comes back (a timeout on the way back)."""
    original = SandboxProcessor.charge
    calls: list[int] = []

    def charge_then_time_out(self: SandboxProcessor, **kwargs: Any) -> Any:
        result = original(self, **kwargs)
        if not calls:
            calls.append(1)
            raise ProcessorOutcomeUnknown("timed out reading the answer")
        return result

    monkeypatch.setattr(SandboxProcessor, "charge", charge_then_time_out)


@pytest.mark.usefixtures("processor_that_times_out_after_charging")
def test_a_processor_timeout_after_charging_is_settled_by_the_retry_with_a_lookup(
    token: str, payments: Invoke, stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = payments(payment_event(token))
    assert_503(first, "payment_in_progress")
    # Another request is refused: the token may be spent
    assert payments(payment_event(token, amount=1))["statusCode"] == 409
    # The same request asks the processor first, finds the charge, and records it
    lookups: list[str] = []
    original_find = SandboxProcessor.find_charge
    monkeypatch.setattr(
        SandboxProcessor,
        "find_charge",
        lambda self, key: lookups.append(key) or original_find(self, key),
    )
    assert body(pays(payments, token))["status"] == "approved"
    assert lookups == [jti_of(token)]
    assert_charged_once(stack, token)


def test_many_faults_in_a_row_never_charge_twice_or_answer_outside_the_contract(
    token: str, payments: Invoke, stack: LocalStack
) -> None:
    # Given every call of a payment loses its answer once, the request retried until it is paid
    key = new_key()
    statuses: list[int] = []
    with faults_on(dynamodb_client(), kms_client()) as faults:
        for _ in range(3):
            for operation in ("UpdateItem", "TransactWriteItems", "GetItem", "PutItem", "Decrypt"):
                faults.plan(operation, "lost")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            response = payments(payment_event(token, idempotency_key=key))
            statuses.append(response["statusCode"])
            if response["statusCode"] == 201:
                break
            assert response["statusCode"] == 503, response["body"]
    assert statuses[-1] == 201, statuses
    assert_charged_once(stack, token)


def test_a_kms_answer_cut_short_is_503_and_leaves_the_token_usable(
    token: str, payments: Invoke, stack: LocalStack
) -> None:
    with faults_on(kms_client()) as faults:
        faults.plan("Decrypt", "hollow")
        assert_503(payments(payment_event(token)))
    assert faults.fired == [("Decrypt", "hollow")]
    assert token_item(stack, token)["status"]["S"] == "issued"
    pays(payments, token)
    assert_invariants(stack, token)


def test_issuing_survives_a_lost_answer_to_the_token_record(
    issue: Invoke, stack: LocalStack
) -> None:
    # Given the token record's PutItem commits and its answer is lost, so botocore resends it
    with faults_on(dynamodb_client()) as faults:
        faults.plan("PutItem", "lost")
        response = issue(token_event())
    assert faults.fired == [("PutItem", "lost")]
    # Then the resend recognizes its own record: 201, and the record is the token's
    assert response["statusCode"] == 201, response["body"]
    assert token_item(stack, body(response)["token"])["status"]["S"] == "issued"


def test_issuing_with_a_kms_answer_cut_short_is_503(issue: Invoke) -> None:
    with faults_on(kms_client()) as faults:
        faults.plan("GenerateDataKey", "hollow")
        response = issue(token_event())
    assert_503(response)
