from __future__ import annotations

import base64
import dataclasses
import json
from types import ModuleType
from typing import Any

import boto3
import jwt
import pytest

from local.provision import LocalStack
from tests.flows import (
    Invoke,
    body,
    dynamodb_item,
    load_event,
    response_header,
    set_header,
    token_event,
)


def test_the_sample_event_issues_a_token_of_the_documented_shape(issue: Invoke) -> None:
    # Given the sample event from events/ (what `sam local invoke` sends)
    # When it reaches the handler
    response = issue(load_event("issue_token.json"))
    # Then the contract's 201 comes back
    assert response["statusCode"] == 201, response["body"]
    assert response_header(response, "Content-Type") == "application/json"
    assert response_header(response, "Cache-Control") == "no-store"
    issued = body(response)
    assert issued["token_type"] == "card+jwt"
    assert issued["card"] == {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}
    assert issued["expires_at"].endswith("Z")
    header = jwt.get_unverified_header(issued["token"])
    assert header["typ"] == "card+jwt"
    assert header["alg"] == "ES256"


def test_the_token_carries_sealed_card_data_and_no_data_key(
    issue: Invoke, stack: LocalStack
) -> None:
    issued = body(issue(token_event()))
    claims = jwt.decode(issued["token"], options={"verify_signature": False})
    assert set(claims) == {"iss", "aud", "iat", "nbf", "exp", "jti", "meta_data"}
    assert claims["exp"] - claims["iat"] == int(stack.environment["TOKEN_LIFETIME_SECONDS"])
    sealed = base64.urlsafe_b64decode(claims["meta_data"] + "==")
    assert b"4242424242424242" not in sealed
    # The KMS-encrypted data key lives in the token record, keyed by jti.
    item = dynamodb_item(stack, "TOKEN_TABLE_NAME", {"jti": {"S": claims["jti"]}})
    assert item is not None
    assert item["status"] == {"S": "issued"}
    encrypted_key = item["encrypted_data_key"]["B"]
    assert encrypted_key not in sealed
    assert int(item["ttl"]["N"]) > claims["exp"]


def test_the_data_key_only_opens_under_the_tokens_encryption_context(
    issue: Invoke, stack: LocalStack
) -> None:
    claims = jwt.decode(body(issue(token_event()))["token"], options={"verify_signature": False})
    item = dynamodb_item(stack, "TOKEN_TABLE_NAME", {"jti": {"S": claims["jti"]}})
    assert item is not None
    kms = boto3.client("kms")
    context = {"purpose": "card-token", "jti": claims["jti"], "aud": claims["aud"]}
    blob = item["encrypted_data_key"]["B"]
    assert len(kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"]) == 32
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={**context, "jti": "another"})


@pytest.mark.parametrize(
    ("card", "status", "code", "field"),
    [
        ({"card_number": "4242424242424241"}, 400, "invalid_card_number", "card_number"),
        ({"card_number": 4242424242424242}, 400, "invalid_card_number", "card_number"),
        ({"exp_month": 1, "exp_year": 2020}, 400, "card_expired", "exp_year"),
        ({"exp_month": 13}, 400, "invalid_expiry", "exp_month"),
        ({"cvv": "12"}, 400, "invalid_cvv", "cvv"),
        ({"cvv": "123", "card_number": "378282246310005"}, 400, "invalid_cvv", "cvv"),
        ({"colour": "blue"}, 400, "invalid_request", "colour"),
        ({"cardholder_name": "x" * 101}, 400, "invalid_request", "cardholder_name"),
    ],
)
def test_invalid_card_data_is_a_400_naming_the_field(
    issue: Invoke, card: dict[str, Any], status: int, code: str, field: str
) -> None:
    response = issue(token_event(**card))
    assert response["statusCode"] == status
    assert body(response) == {
        "error": {"code": code, "message": body(response)["error"]["message"], "field": field}
    }
    assert "4242" not in response["body"]


def test_a_body_that_is_not_json_is_a_400(issue: Invoke) -> None:
    event = load_event("issue_token.json")
    event["body"] = '{"card_number": '
    response = issue(event)
    assert response["statusCode"] == 400
    assert body(response)["error"]["code"] == "invalid_request"


def test_a_body_that_is_not_declared_json_is_a_415(issue: Invoke) -> None:
    event = load_event("issue_token.json")
    set_header(event, "Content-Type", "text/plain")
    response = issue(event)
    assert response["statusCode"] == 415
    assert body(response)["error"]["code"] == "unsupported_media_type"


def test_a_body_over_16_kib_is_a_413(issue: Invoke) -> None:
    event = token_event(cardholder_name="x" * 17000)
    response = issue(event)
    assert response["statusCode"] == 413
    assert body(response)["error"]["code"] == "payload_too_large"


def test_a_base64_encoded_body_is_accepted(issue: Invoke) -> None:
    event = load_event("issue_token.json")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    assert issue(event)["statusCode"] == 201


def test_an_unknown_route_gets_api_gateways_404(issue: Invoke) -> None:
    event = load_event("issue_token.json")
    event["path"] = event["requestContext"]["path"] = "/tokens/extra"
    event["resource"] = event["requestContext"]["resourcePath"] = "/tokens/extra"
    response = issue(event)
    assert response["statusCode"] == 404
    assert json.loads(response["body"]) == {"message": "Not Found"}


def _preflight(origin: str) -> dict[str, Any]:
    event = load_event("issue_token.json")
    event["httpMethod"] = event["requestContext"]["httpMethod"] = "OPTIONS"
    event["body"] = None
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    event["headers"] = headers
    event["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    return event


def test_with_no_cors_origins_a_preflight_allows_nothing(issue: Invoke) -> None:
    response = issue(_preflight("https://shop.example"))

    assert response["statusCode"] == 204
    headers = {k.lower() for k in response["multiValueHeaders"]}
    assert not any(name.startswith("access-control-") for name in headers)


def test_a_listed_origin_may_post_cross_origin_and_read_the_answer(
    issue: Invoke, issue_token_app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given CorsOrigins=https://shop.example (read at cold start into the settings)
    settings = dataclasses.replace(
        issue_token_app.settings, cors_origins=frozenset({"https://shop.example"})
    )
    monkeypatch.setattr(issue_token_app, "settings", settings)

    # When the browser preflights, then posts a card with its Origin
    preflight = issue(_preflight("https://shop.example"))
    event = load_event("issue_token.json")
    set_header(event, "Origin", "https://shop.example")
    posted = issue(event)

    # Then both answers allow that origin; the preflight allows POST with Content-Type and
    # Authorization only
    assert preflight["statusCode"] == 204
    assert preflight["multiValueHeaders"]["Access-Control-Allow-Origin"] == ["https://shop.example"]
    assert preflight["multiValueHeaders"]["Access-Control-Allow-Methods"] == ["POST"]
    assert preflight["multiValueHeaders"]["Access-Control-Allow-Headers"] == [
        "authorization, content-type"
    ]
    assert posted["statusCode"] == 201
    assert posted["multiValueHeaders"]["Access-Control-Allow-Origin"] == ["https://shop.example"]
    assert posted["multiValueHeaders"]["Vary"] == ["Origin"]
    # And another origin is not allowed to read anything
    other = issue(_preflight("https://evil.example"))
    assert "Access-Control-Allow-Origin" not in other["multiValueHeaders"]
