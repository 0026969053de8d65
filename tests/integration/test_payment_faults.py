"""Faults on every AWS call of the payment path, and the invariants on stored state after each.

- no charge without a payment record, and never two charges for one token;
- a failure before the charge leaves the token usable for a retry;
- after authorization (approved or declined) the token's data key is gone.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

from card_tokens.aws import dynamodb_client, kms_client
from card_tokens.payments import sandbox_processor
from card_tokens.processor import ProcessorFailure, SandboxProcessor
from card_tokens.records import payment_id_for
from local.lambda_runtime import LambdaContext
from local.provision import LocalStack
from tests.flows import Invoke, body, dynamodb_item, get_event, new_token, payment_event


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Injected",
    )


FAULTS: dict[str, Callable[[], Exception]] = {
    "throttled": lambda: client_error("ThrottlingException"),
    "5xx": lambda: client_error("InternalServerError", 500),
    "read-timeout": lambda: ReadTimeoutError(endpoint_url="https://aws"),
    "connect-timeout": lambda: ConnectTimeoutError(endpoint_url="https://aws"),
}


@contextmanager
def failing(
    client: Any, operation: str, error: Exception, *, table: str | None = None
) -> Iterator[list[int]]:
    """Calls of one operation (on one table, if given) fail as they would after all retries."""
    service = client.meta.service_model.service_id.hyphenize()
    event = f"before-call.{service}.{operation}"
    hits: list[int] = []

    def fail(params: dict[str, Any], **_: Any) -> None:
        if (
            table is None
            or f'"TableName": "{table}"'.encode() in params["body"]
            or (table.encode() in params["body"])
        ):
            hits.append(1)
            raise error

    client.meta.events.register(event, fail)
    try:
        yield hits
    finally:
        client.meta.events.unregister(event, fail)


def jti_of(token: str) -> str:
    jti: str = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]
    return jti


def token_item(stack: LocalStack, token: str) -> dict[str, Any]:
    item = dynamodb_item(stack, "TOKEN_TABLE_NAME", {"jti": {"S": jti_of(token)}})
    assert item is not None
    return item


def assert_invariants(stack: LocalStack, token: str) -> None:
    """What must hold for this token whatever failed."""
    jti = jti_of(token)
    charges = [e for e in sandbox_processor().ledger() if e.idempotency_key == jti]
    assert len(charges) <= 1, "two charges for one token"
    payment = dynamodb_item(stack, "PAYMENT_TABLE_NAME", {"payment_id": {"S": payment_id_for(jti)}})
    if charges:
        assert payment is not None, "a charge without a payment record"
    item = token_item(stack, token)
    if item["status"]["S"] == "used":
        assert "encrypted_data_key" not in item, "an authorized token kept its data key"
        assert payment is not None
        assert payment["status"]["S"] == charges[0].result.outcome


def assert_503(response: dict[str, Any]) -> None:
    assert response["statusCode"] == 503, response["body"]
    assert body(response)["error"]["code"] == "service_unavailable"
    assert int(response["headers"]["Retry-After"]) > 0
    assert "Traceback" not in response["body"]


def pays(payments: Invoke, token: str, **kwargs: Any) -> dict[str, Any]:
    response = payments(payment_event(token, **kwargs))
    assert response["statusCode"] == 201, response["body"]
    return response


BEFORE_CHARGE = [
    ("dynamodb", "PutItem", "IDEMPOTENCY_TABLE_NAME"),  # Powertools: save the in-progress record
    ("dynamodb", "UpdateItem", "TOKEN_TABLE_NAME"),  # claim the token
    ("dynamodb", "PutItem", "PAYMENT_TABLE_NAME"),  # the pending payment record
    ("kms", "Decrypt", None),  # open the data key
]


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
@pytest.mark.parametrize(
    ("service", "operation", "table"),
    BEFORE_CHARGE,
    ids=[f"{s}-{o}-{t}" for s, o, t in BEFORE_CHARGE],
)
def test_a_fault_before_the_charge_is_503_and_leaves_the_token_usable(
    issue: Invoke,
    payments: Invoke,
    stack: LocalStack,
    service: str,
    operation: str,
    table: str | None,
    fault: str,
) -> None:
    # Given a fresh token
    token = new_token(issue)
    client = dynamodb_client() if service == "dynamodb" else kms_client()
    # When one AWS call before the charge fails
    with failing(
        client,
        operation,
        FAULTS[fault](),
        table=stack.environment.get(table or "") if table else None,
    ) as hits:
        assert_503(payments(payment_event(token, idempotency_key=f"k-{time.time_ns()}")))
    assert hits, "the fault was never injected"
    # Then nothing was charged, the token is usable, and a retry pays
    assert token_item(stack, token)["status"]["S"] == "issued"
    assert_invariants(stack, token)
    pays(payments, token, idempotency_key=f"k-{time.time_ns()}")
    assert_invariants(stack, token)


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_a_fault_recording_the_result_is_503_and_the_same_request_finishes_it(
    issue: Invoke, payments: Invoke, stack: LocalStack, fault: str
) -> None:
    token = new_token(issue, card_number="4000 0000 0000 0002")  # declined: also authorized
    with failing(dynamodb_client(), "TransactWriteItems", FAULTS[fault]()):
        assert_503(payments(payment_event(token)))
    assert_invariants(stack, token)  # charged once, and the pending record is there
    retry = pays(payments, token)
    assert body(retry)["status"] == "declined"
    assert_invariants(stack, token)
    assert "encrypted_data_key" not in token_item(stack, token)


def test_a_fault_saving_the_idempotent_answer_loses_nothing(
    issue: Invoke, process_payment_app: Any, payments: Invoke, stack: LocalStack
) -> None:
    # Given the payment went through but Powertools could not store its answer
    token = new_token(issue)
    event = payment_event(token, idempotency_key=f"lost-answer-{time.time_ns()}")
    short_lived = LambdaContext("ProcessPaymentFunction", 512, 1)  # in-progress window: 1 s
    with failing(
        dynamodb_client(),
        "UpdateItem",
        client_error("InternalServerError", 500),
        table=stack.environment["IDEMPOTENCY_TABLE_NAME"],
    ):
        assert_503(process_payment_app.lambda_handler(event, short_lived))
    assert_invariants(stack, token)
    # When the client retries at once, it is told to wait
    busy = payments(event)
    assert busy["statusCode"] == 409
    assert body(busy)["error"]["code"] == "request_in_progress"
    assert busy["headers"]["Retry-After"] == "1"
    # Then after the window the retry gets the payment, and nothing was charged twice
    time.sleep(1.2)
    answer = pays(payments, token, idempotency_key=event["headers"]["idempotency-key"])
    assert body(answer)["payment_id"] == payment_id_for(jti_of(token))
    assert_invariants(stack, token)


def test_reading_a_payment_while_dynamodb_is_down_is_503(issue: Invoke, payments: Invoke) -> None:
    payment = body(pays(payments, new_token(issue)))
    with failing(dynamodb_client(), "GetItem", client_error("InternalServerError", 500)):
        assert_503(payments(get_event(payment["payment_id"])))


@pytest.fixture
def processor_that_times_out_after_charging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The charge goes through, but its answer is lost (a timeout on the way back)."""
    original = SandboxProcessor.charge
    calls: list[int] = []

    def charge_then_time_out(self: SandboxProcessor, **kwargs: Any) -> Any:
        result = original(self, **kwargs)
        if not calls:
            calls.append(1)
            raise ProcessorFailure("timed out reading the answer")
        return result

    monkeypatch.setattr(SandboxProcessor, "charge", charge_then_time_out)


@pytest.mark.usefixtures("processor_that_times_out_after_charging")
def test_a_processor_timeout_after_charging_cannot_charge_twice(
    issue: Invoke, payments: Invoke, stack: LocalStack
) -> None:
    token = new_token(issue)
    first = payments(payment_event(token))
    assert first["statusCode"] == 502
    assert body(first)["error"]["code"] == "processor_error"
    # A retry with another amount would be a second charge: the processor's key refuses it
    other = payments(payment_event(token, amount=1))
    assert other["statusCode"] == 409
    # The same request gets the charge that was made, once
    assert body(pays(payments, token))["status"] == "approved"
    assert_invariants(stack, token)
    charges = [e for e in sandbox_processor().ledger() if e.idempotency_key == jti_of(token)]
    assert len(charges) == 1
