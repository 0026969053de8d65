"""Cross-merchant attacks, in-process through the real handlers (issue 16).

Two merchants, A and B, each with a publishable key, a checkout origin and a back-end role.
The payment routes see the caller as API Gateway does after SigV4 (requestContext.identity
.userArn); each attack asserts the contract's exact answer, and that it changed nothing A owns.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from card_tokens.config import MERCHANT_CACHE_SECONDS
from card_tokens.errors import InvalidPublishableKey, OriginNotAllowed
from card_tokens.merchants import Merchant
from tests.flows import Invoke, body, get_event, payment_event, token_event
from tests.security.merchant_registry import (
    Registry,
    role_arn,
    session_arn,
    signed_by,
    with_key,
)

SHOP_A = "https://shop-a.example"
SHOP_B = "https://shop-b.example"
INVALID_TOKEN = {"code": "invalid_token", "message": "The token is not valid."}


@dataclass
class Shops:
    a: Merchant
    b: Merchant


@pytest.fixture
def shops(registry: Registry) -> Shops:
    return Shops(
        a=registry.add("Shop A", (SHOP_A,), (role_arn("ShopA"),)),
        b=registry.add("Shop B", (SHOP_B,), (role_arn("ShopB"),)),
    )


def token_of(issue: Invoke, merchant: Merchant, origin: str | None = None) -> str:
    response = issue(with_key(token_event(), merchant.publishable_key, origin))
    assert response["statusCode"] == 201, response["body"]
    token: str = body(response)["token"]
    return token


def pay_as(
    payments: Invoke, role: str | None, token: str, key: str | None = None, **fields: Any
) -> dict[str, Any]:
    arn = session_arn(role) if role else None
    return payments(signed_by(payment_event(token, idempotency_key=key, **fields), arn))


def error_of(response: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = body(response)["error"]
    return error


def test_merchant_b_cannot_read_a_payment_of_merchant_a(
    shops: Shops, issue: Invoke, payments: Invoke
) -> None:
    paid = pay_as(payments, "ShopA", token_of(issue, shops.a))
    assert paid["statusCode"] == 201, paid["body"]
    payment_id = body(paid)["payment_id"]
    # B, signed with its own role, asks for A's payment: as if it did not exist
    read_by_b = payments(signed_by(get_event(payment_id), session_arn("ShopB")))
    assert read_by_b["statusCode"] == 404
    assert error_of(read_by_b)["code"] == "payment_not_found"
    assert (
        read_by_b["body"]
        == payments(signed_by(get_event("pay_" + "a" * 24), session_arn("ShopB")))["body"]
    )
    # Nor can an unsigned or unregistered caller; A still can
    for arn in (None, "arn:aws:iam::123456789012:user/stranger"):
        assert payments(signed_by(get_event(payment_id), arn))["statusCode"] == 404
    read_by_a = payments(signed_by(get_event(payment_id), session_arn("ShopA")))
    assert read_by_a["statusCode"] == 200
    assert body(read_by_a) == body(paid)


def test_merchant_b_cannot_redeem_a_token_of_merchant_a_and_does_not_burn_it(
    shops: Shops, issue: Invoke, payments: Invoke
) -> None:
    token = token_of(issue, shops.a, SHOP_A)
    # B tries A's token for a huge amount: refused exactly like a forged token
    stolen = pay_as(payments, "ShopB", token, amount=99_999_999)
    assert stolen["statusCode"] == 401
    assert error_of(stolen) == INVALID_TOKEN
    # So are an unsigned caller and a principal no merchant registered
    assert error_of(pay_as(payments, None, token)) == INVALID_TOKEN
    assert pay_as(payments, "Stranger", token)["statusCode"] == 401
    # The token was not claimed: A pays with it afterwards
    paid = pay_as(payments, "ShopA", token)
    assert paid["statusCode"] == 201, paid["body"]
    assert body(paid)["status"] == "approved"


def test_a_single_caller_token_is_refused_once_merchants_exist(
    issue: Invoke, payments: Invoke, registry: Registry
) -> None:
    # Issued while the registry was empty (no mid), redeemed after a merchant was registered
    legacy = issue(token_event())
    assert legacy["statusCode"] == 201, legacy["body"]
    registry.add("Shop A", (SHOP_A,), (role_arn("ShopA"),))
    registry.clock.now += MERCHANT_CACHE_SECONDS
    refused = pay_as(payments, "ShopA", body(legacy)["token"])
    assert refused["statusCode"] == 401
    assert error_of(refused) == INVALID_TOKEN


def test_the_same_idempotency_key_at_two_merchants_are_two_payments(
    shops: Shops, issue: Invoke, payments: Invoke
) -> None:
    key = f"order-{uuid.uuid4()}"
    at_a = pay_as(payments, "ShopA", token_of(issue, shops.a), key, amount=1000)
    # B's request with the same key and another body is neither blocked (422) nor answered
    # with A's payment
    at_b = pay_as(payments, "ShopB", token_of(issue, shops.b), key, amount=2000)
    assert (at_a["statusCode"], at_b["statusCode"]) == (201, 201), (at_a["body"], at_b["body"])
    assert body(at_a)["payment_id"] != body(at_b)["payment_id"]
    assert (body(at_a)["amount"], body(at_b)["amount"]) == (1000, 2000)
    # Each merchant's own key space still refuses a key reused with another body
    again_b = pay_as(payments, "ShopB", token_of(issue, shops.b), key, amount=2000)
    assert again_b["statusCode"] == 422
    assert error_of(again_b)["code"] == "idempotency_key_reused"


def test_an_old_publishable_key_stops_working_once_the_cache_passes_its_bound(
    shops: Shops, issue: Invoke, registry: Registry
) -> None:
    old_key = shops.a.publishable_key
    assert issue(with_key(token_event(), old_key))["statusCode"] == 201
    rotated = registry.rotate_key(shops.a)
    # Within the stated bound an environment that cached the old key still accepts it
    registry.clock.now += MERCHANT_CACHE_SECONDS - 1
    assert issue(with_key(token_event(), old_key))["statusCode"] == 201
    # Past it, never again; the new key works
    registry.clock.now += 1
    refused = issue(with_key(token_event(), old_key))
    assert refused["statusCode"] == 401
    assert error_of(refused)["code"] == "invalid_publishable_key"
    assert old_key not in refused["body"]
    assert issue(with_key(token_event(), rotated.publishable_key))["statusCode"] == 201


@pytest.mark.parametrize(
    "origin",
    [
        SHOP_B,  # another merchant's page
        "https://evil.example",
        "https://shop-a.example.evil.example",
        "http://shop-a.example",
        "https://shop-a.example:444",
        "null",
        "",
    ],
)
def test_a_forged_origin_is_refused_and_no_token_is_issued(
    shops: Shops, issue: Invoke, origin: str
) -> None:
    refused = issue(with_key(token_event(), shops.a.publishable_key, origin))
    assert refused["statusCode"] == 403
    assert error_of(refused)["code"] == "origin_not_allowed"
    assert "token" not in body(refused)
    assert error_of(refused)["message"] == OriginNotAllowed.message  # fixed: nothing echoed


@pytest.mark.parametrize(
    "authorization",
    [
        None,  # no key once merchants exist
        "Bearer pk_" + "z" * 24,  # well-formed, unknown
        "Bearer sk_" + "a" * 24,
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "pk_" + "a" * 24,  # no scheme
        "Bearer pk_" + "a" * 24 + " extra",
    ],
)
def test_a_missing_malformed_or_unknown_key_is_401(
    shops: Shops, issue: Invoke, authorization: str | None
) -> None:
    event = with_key(token_event(), None)
    if authorization is not None:
        event["headers"]["Authorization"] = authorization
        event["multiValueHeaders"]["Authorization"] = [authorization]
    refused = issue(event)
    assert refused["statusCode"] == 401
    assert error_of(refused)["code"] == "invalid_publishable_key"
    assert error_of(refused)["message"] == InvalidPublishableKey.message  # nothing echoed


def test_the_header_name_and_scheme_are_case_insensitive(shops: Shops, issue: Invoke) -> None:
    event = with_key(token_event(), None)
    event["headers"]["authorization"] = f"bearer {shops.b.publishable_key}"
    event["multiValueHeaders"]["authorization"] = [f"bearer {shops.b.publishable_key}"]
    assert issue(event)["statusCode"] == 201


def test_single_caller_mode_needs_no_key_and_no_principal(
    issue: Invoke, payments: Invoke, registry: Registry
) -> None:
    # An empty registry: the README's flow, unchanged
    assert registry.directory.is_empty()
    token = body(issue(token_event()))["token"]
    paid = pay_as(payments, None, token)
    assert paid["statusCode"] == 201, paid["body"]
    read = payments(signed_by(get_event(body(paid)["payment_id"]), None))
    assert read["statusCode"] == 200
    assert body(read) == body(paid)
