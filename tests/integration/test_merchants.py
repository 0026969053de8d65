"""Merchants through the handlers: the token's mid claim, what the records keep, the cache."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from card_tokens.aws import dynamodb_client
from card_tokens.merchants import MERCHANT_ID
from card_tokens.stores import idempotency_key_id
from local.provision import LocalStack
from tests.flows import Invoke, body, dynamodb_item, payment_event, token_event
from tests.security.merchant_registry import (
    Registry,
    registry_fixture,  # noqa: F401 - the fixture `registry`
    role_arn,
    session_arn,
    signed_by,
    with_key,
)


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


@contextmanager
def registry_reads(table: str) -> Iterator[list[str]]:
    """The GetItem calls the service makes on one table, by key."""
    reads: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        if params.get("TableName") == table:
            reads.append(params["Key"]["pk"]["S"])

    client = dynamodb_client()
    client.meta.events.register("provide-client-params.dynamodb.GetItem", record)
    try:
        yield reads
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.GetItem", record)


def test_a_token_names_its_merchant_and_a_single_caller_token_none(
    registry: Registry, issue: Invoke
) -> None:
    plain = body(issue(token_event()))["token"]
    assert "mid" not in claims_of(plain)
    shop = registry.add("Shop", ("https://shop.example",), (role_arn("Shop"),))
    registry.clock.now += 60
    issued = issue(with_key(token_event(), shop.publishable_key, "https://shop.example"))
    assert issued["statusCode"] == 201, issued["body"]
    mid = claims_of(body(issued)["token"])["mid"]
    assert mid == shop.merchant_id
    assert MERCHANT_ID.fullmatch(mid)


def test_the_records_carry_the_merchant_and_the_payment_id_drawn_at_issue(
    registry: Registry, issue: Invoke, payments: Invoke, stack: LocalStack
) -> None:
    shop = registry.add("Shop", (), (role_arn("Shop"),))
    token = body(issue(with_key(token_event(), shop.publishable_key)))["token"]
    jti = claims_of(token)["jti"]
    issued = dynamodb_item(stack, "TOKEN_TABLE_NAME", {"jti": {"S": jti}})
    assert issued is not None
    assert issued["merchant_id"] == {"S": shop.merchant_id}
    payment_id = issued["payment_id"]["S"]
    # Drawn at random: not the digest of the jti the id once was
    digest = hashlib.sha256(b"payment:" + jti.encode()).digest()[:15]
    assert payment_id != "pay_" + base64.b32encode(digest).decode().lower()

    key = f"order-{uuid.uuid4()}"
    paid = payments(signed_by(payment_event(token, idempotency_key=key), session_arn("Shop")))
    assert paid["statusCode"] == 201, paid["body"]
    assert body(paid)["payment_id"] == payment_id
    record = dynamodb_item(stack, "PAYMENT_TABLE_NAME", {"payment_id": {"S": payment_id}})
    assert record is not None
    assert record["merchant_id"] == {"S": shop.merchant_id}
    # The key's record lives in the merchant's own key space
    scoped = idempotency_key_id(key, shop.merchant_id)
    assert scoped != idempotency_key_id(key, None)
    assert dynamodb_item(stack, "IDEMPOTENCY_TABLE_NAME", {"id": {"S": scoped}}) is not None
    assert (
        dynamodb_item(stack, "IDEMPOTENCY_TABLE_NAME", {"id": {"S": idempotency_key_id(key, None)}})
        is None
    )
    # The processor's books name the payment too
    ledger = boto3.client("dynamodb").get_item(
        TableName=stack.environment["SANDBOX_LEDGER_TABLE_NAME"],
        Key={"idempotency_key": {"S": jti}},
        ConsistentRead=True,
    )["Item"]
    assert ledger["payment_id"] == {"S": payment_id}


def test_a_warm_environment_asks_the_registry_nothing(
    registry: Registry, issue: Invoke, payments: Invoke
) -> None:
    shop = registry.add("Shop", (), (role_arn("Shop"),))
    with registry_reads(registry.table) as cold:
        token = body(issue(with_key(token_event(), shop.publishable_key)))["token"]
        paid = payments(signed_by(payment_event(token), session_arn("Shop")))
        assert paid["statusCode"] == 201, paid["body"]
    assert cold == [
        f"key#{shop.publishable_key}",
        f"merchant#{shop.merchant_id}",
        f"principal#{role_arn('Shop')}",
        f"merchant#{shop.merchant_id}",
    ]
    registry.clock.now += 59  # within the 60 s bound
    with registry_reads(registry.table) as warm:
        token = body(issue(with_key(token_event(), shop.publishable_key)))["token"]
        assert payments(signed_by(payment_event(token), session_arn("Shop")))["statusCode"] == 201
    assert warm == []
