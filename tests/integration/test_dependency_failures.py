"""AWS failures left after botocore's retries: 503 with Retry-After, and nothing lost."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError

from card_tokens.aws import dynamodb_client, kms_client, secretsmanager_client
from card_tokens.key_store import KEYS
from card_tokens.wiring import payment_processor as sandbox_processor
from tests.aws_faults import client_error, failing
from tests.flows import (
    Invoke,
    assert_503,
    body,
    load_event,
    new_token,
    payment_event,
    response_header,
    token_event,
)

KMS_FAULTS: list[tuple[str, Callable[[], Exception]]] = [
    ("throttled", lambda: client_error("ThrottlingException")),
    ("disabled key", lambda: client_error("DisabledException")),
    ("pending deletion", lambda: client_error("KMSInvalidStateException")),
    ("internal error", lambda: client_error("KMSInternalException", 500)),
    ("timeout", lambda: ReadTimeoutError(endpoint_url="https://kms")),
]


@pytest.mark.parametrize(("name", "fault"), KMS_FAULTS, ids=[n for n, _ in KMS_FAULTS])
def test_kms_failing_while_issuing_is_503(
    issue: Invoke, name: str, fault: Callable[[], Exception]
) -> None:
    with failing(kms_client(), "GenerateDataKey", fault()):
        assert_503(issue(token_event()))


@pytest.mark.parametrize(("name", "fault"), KMS_FAULTS, ids=[n for n, _ in KMS_FAULTS])
def test_kms_failing_while_paying_is_503_and_the_token_stays_usable(
    issue: Invoke, payments: Invoke, name: str, fault: Callable[[], Exception]
) -> None:
    token = new_token(issue)
    charges = len(sandbox_processor().ledger())
    with failing(kms_client(), "Decrypt", fault()):
        assert_503(payments(payment_event(token)))
    assert len(sandbox_processor().ledger()) == charges  # nothing charged
    assert payments(payment_event(token))["statusCode"] == 201  # the retry goes through


def test_dynamodb_failing_while_issuing_is_503(issue: Invoke) -> None:
    with failing(
        dynamodb_client(), "PutItem", client_error("ProvisionedThroughputExceededException")
    ):
        assert_503(issue(token_event()))


def test_dynamodb_failing_to_claim_is_503_and_the_token_stays_usable(
    issue: Invoke, payments: Invoke
) -> None:
    token = new_token(issue)
    with failing(dynamodb_client(), "UpdateItem", client_error("InternalServerError", 500)):
        assert_503(payments(payment_event(token)))
    assert payments(payment_event(token))["statusCode"] == 201


def test_dynamodb_failing_after_the_charge_is_503_and_the_same_request_finishes_it(
    issue: Invoke, payments: Invoke
) -> None:
    # Given the charge succeeded but recording it failed
    token = new_token(issue, card_number="5555 5555 5555 4444")
    charges = len(sandbox_processor().ledger())
    with failing(dynamodb_client(), "TransactWriteItems", client_error("InternalServerError", 500)):
        in_doubt = payments(payment_event(token))
    assert in_doubt["statusCode"] == 503
    assert body(in_doubt)["error"]["code"] == "payment_in_progress"
    assert int(response_header(in_doubt, "Retry-After") or 0) > 0
    assert len(sandbox_processor().ledger()) == charges + 1
    # When the client retries the same request
    retry = payments(payment_event(token))
    # Then it gets the payment, and the processor was not charged a second time
    assert retry["statusCode"] == 201
    assert body(retry)["status"] == "approved"
    assert len(sandbox_processor().ledger()) == charges + 1
    # and a different request with the same token is refused
    assert payments(payment_event(token, amount=1))["statusCode"] == 409


def test_secrets_manager_down_with_a_cold_cache_is_503(issue: Invoke) -> None:
    KEYS.reset()
    with failing(
        secretsmanager_client(), "GetSecretValue", client_error("InternalServiceError", 500)
    ):
        assert_503(issue(token_event()))


def test_secrets_manager_down_with_a_warm_cache_still_issues(issue: Invoke) -> None:
    assert issue(token_event())["statusCode"] == 201  # warms the cache
    with failing(
        secretsmanager_client(), "GetSecretValue", client_error("InternalServiceError", 500)
    ):
        assert issue(token_event())["statusCode"] == 201


def test_an_unusable_verification_keys_secret_makes_the_jwks_503(jwks: Invoke, stack: Any) -> None:
    # Given the public-keys secret holds something that is not a key set
    secrets = boto3.client("secretsmanager")
    secret_id = stack.environment["VERIFICATION_KEYS_SECRET_ID"]
    good = secrets.get_secret_value(SecretId=secret_id)["SecretString"]
    secrets.put_secret_value(SecretId=secret_id, SecretString='{"not": "a key set"}')
    KEYS.reset()
    try:
        # Then the JWKS route says the dependency is unavailable, not 500
        assert_503(jwks(load_event("jwks.json")))
    finally:
        secrets.put_secret_value(SecretId=secret_id, SecretString=good)
        KEYS.reset()
