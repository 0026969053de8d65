"""Random mutations of a real token, through the payment handler: all 401, none charged."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from card_tokens.wiring import payment_processor as sandbox_processor
from local.lambda_runtime import LambdaContext
from tests.flows import payment_event, token_event

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


@pytest.fixture(scope="module")
def real_token(issue_token_app: ModuleType) -> str:
    response = issue_token_app.lambda_handler(token_event(), LambdaContext("issue", 512, 13))
    token: str = json.loads(response["body"])["token"]
    return token


def pay(app: ModuleType, token: str) -> dict[str, Any]:
    response: dict[str, Any] = app.lambda_handler(
        payment_event(token), LambdaContext("ProcessPaymentFunction", 512, 29)
    )
    return response


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_mutated_byte_of_any_segment_is_401_and_reaches_no_processor(
    real_token: str, process_payment_app: ModuleType, data: st.DataObject
) -> None:
    edits = data.draw(st.integers(1, 3), label="edits")
    token = real_token
    for _ in range(edits):
        position = data.draw(st.integers(0, len(token) - 1), label="position")
        current = token[position]
        replacement = data.draw(st.sampled_from(ALPHABET.replace(current, "")), label="with")
        token = token[:position] + replacement + token[position + 1 :]
    assume(token != real_token)  # two edits at one place can restore the original
    charges = len(sandbox_processor().ledger())
    response = pay(process_payment_app, token)
    assert response["statusCode"] == 401, response["body"]
    assert len(sandbox_processor().ledger()) == charges


def test_the_unmutated_token_pays(real_token: str, process_payment_app: ModuleType) -> None:
    # Runs after the property (file order): the original token was never burnt by a mutant.
    assert pay(process_payment_app, real_token)["statusCode"] == 201
