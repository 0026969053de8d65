from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from card_tokens.wiring import payment_processor as sandbox_processor
from local.provision import LocalStack
from tests.flows import (
    Invoke,
    body,
    dynamodb_item,
    get_event,
    load_event,
    new_token,
    payment_event,
    response_header,
    set_header,
)


def error_code(response: dict[str, Any]) -> str:
    code: str = body(response)["error"]["code"]
    return code


def charges_for(last4: str) -> int:
    return sum(1 for entry in sandbox_processor().ledger() if entry.last4 == last4)


def test_a_fresh_token_pays_once_and_the_payment_can_be_read(
    issue: Invoke, payments: Invoke
) -> None:
    # Given a token for an approved test card
    token = new_token(issue)
    # When it is redeemed through the sample payment event
    response = payments(payment_event(token))
    # Then the payment is approved, and GET returns the same object
    assert response["statusCode"] == 201, response["body"]
    payment = body(response)
    assert payment["status"] == "approved"
    assert payment["decline_code"] is None
    assert payment["card"] == {"brand": "visa", "last4": "4242"}
    assert (payment["amount"], payment["currency"]) == (1999, "EUR")
    assert payment["payment_id"].startswith("pay_")
    read = payments(get_event(payment["payment_id"]))
    assert read["statusCode"] == 200
    assert body(read) == payment


def test_after_authorization_the_data_key_is_gone(
    issue: Invoke, payments: Invoke, stack: LocalStack
) -> None:
    token = new_token(issue)
    assert payments(payment_event(token))["statusCode"] == 201
    jti = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]
    item = dynamodb_item(stack, "TOKEN_TABLE_NAME", {"jti": {"S": jti}})
    assert item is not None
    assert item["status"] == {"S": "used"}
    assert "encrypted_data_key" not in item


def test_a_token_used_again_with_another_body_is_409(issue: Invoke, payments: Invoke) -> None:
    token = new_token(issue)
    assert payments(payment_event(token))["statusCode"] == 201
    reused = payments(payment_event(token, amount=5))
    assert reused["statusCode"] == 409
    assert error_code(reused) == "token_already_used"


def test_the_same_request_again_without_a_key_gets_the_same_payment_and_no_new_charge(
    issue: Invoke, payments: Invoke
) -> None:
    # A retry whose first answer was lost: the token's jti makes the request idempotent.
    token = new_token(issue, card_number="5555 5555 5555 4444")
    first = payments(payment_event(token, idempotency_key=None))
    charges = charges_for("4444")
    again = payments(payment_event(token, idempotency_key=None))
    assert again["statusCode"] == 201
    assert body(again) == body(first)
    assert charges_for("4444") == charges


def test_a_tampered_token_is_401_and_reaches_no_processor(issue: Invoke, payments: Invoke) -> None:
    token = new_token(issue, card_number="5555 5555 5555 4444")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["exp"] += 60
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    before = charges_for("4444")
    response = payments(payment_event(f"{header}.{forged}.{signature}"))
    assert response["statusCode"] == 401
    assert body(response) == {
        "error": {"code": "invalid_token", "message": "The token is not valid."}
    }
    assert charges_for("4444") == before


def test_a_retry_with_the_same_idempotency_key_and_body_gets_the_first_answer(
    issue: Invoke, payments: Invoke
) -> None:
    token = new_token(issue)
    first = payments(payment_event(token, idempotency_key="order-1-attempt"))
    again = payments(payment_event(token, idempotency_key="order-1-attempt"))
    assert first["statusCode"] == again["statusCode"] == 201
    assert body(again) == body(first)


def test_an_idempotency_key_reused_with_another_body_is_422(
    issue: Invoke, payments: Invoke
) -> None:
    token = new_token(issue)
    assert payments(payment_event(token, idempotency_key="k-422"))["statusCode"] == 201
    response = payments(payment_event(token, idempotency_key="k-422", amount=1))
    assert response["statusCode"] == 422
    assert error_code(response) == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("number", "decline_code"),
    [("4000 0000 0000 0002", "card_declined"), ("4000 0000 0000 9995", "insufficient_funds")],
)
def test_a_declined_card_is_a_201_with_its_decline_code(
    issue: Invoke, payments: Invoke, number: str, decline_code: str
) -> None:
    response = payments(payment_event(new_token(issue, card_number=number)))
    assert response["statusCode"] == 201
    assert body(response)["status"] == "declined"
    assert body(response)["decline_code"] == decline_code


def test_a_processor_failure_is_502_and_leaves_the_token_usable(
    issue: Invoke, payments: Invoke, stack: LocalStack
) -> None:
    token = new_token(issue, card_number="4000 0000 0000 0119")
    first = payments(payment_event(token))
    assert first["statusCode"] == 502
    assert error_code(first) == "processor_error"
    # The token was given back: a retry is processed again (and fails again, by design).
    assert payments(payment_event(token, amount=10))["statusCode"] == 502
    assert charges_for("0119") == 0


def test_an_unknown_payment_is_404(payments: Invoke) -> None:
    for payment_id in ("pay_" + "a" * 24, "nonsense", "pay_' OR 1=1"):
        response = payments(get_event(payment_id))
        assert response["statusCode"] == 404
        assert error_code(response) == "payment_not_found"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"amount": 0}, "invalid_amount"),
        ({"amount": "1999"}, "invalid_amount"),
        ({"currency": "XXX"}, "unsupported_currency"),
        ({"reference": "r" * 65}, "invalid_request"),
        ({"tip": 5}, "invalid_request"),
    ],
)
def test_bad_payment_fields_are_400_and_do_not_burn_the_token(
    issue: Invoke, payments: Invoke, fields: dict[str, Any], code: str
) -> None:
    token = new_token(issue)
    response = payments(payment_event(token, **fields))
    assert response["statusCode"] == 400
    assert error_code(response) == code
    assert payments(payment_event(token))["statusCode"] == 201


def test_a_malformed_idempotency_key_is_400(issue: Invoke, payments: Invoke) -> None:
    response = payments(payment_event(new_token(issue), idempotency_key="has space"))
    assert response["statusCode"] == 400
    assert body(response)["error"]["field"] == "Idempotency-Key"


def test_a_payment_body_that_is_not_json_is_415_or_400(payments: Invoke) -> None:
    event = load_event("process_payment.json")
    set_header(event, "Content-Type", "text/plain")
    assert payments(event)["statusCode"] == 415
    set_header(event, "Content-Type", "application/json")
    event["body"] = "{"
    assert payments(event)["statusCode"] == 400


def test_the_jwks_lists_public_keys_with_a_short_cache(jwks: Invoke) -> None:
    response = jwks(load_event("jwks.json"))
    assert response["statusCode"] == 200
    assert (response_header(response, "Cache-Control") or "").startswith("public, max-age=")
    keys = body(response)["keys"]
    assert keys
    assert all(set(key) <= {"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"} for key in keys)
