"""A merchant registry of a test's own, wired into the real handlers, with a clock the test moves.

The items follow the registry's contract (card_tokens.merchant_directory): the operator's CLI
writes the same ones. Each test gets a fresh table, so the stack's own registry stays empty and
every other test keeps running in single-caller mode.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import boto3
import pytest

from card_tokens import wiring
from card_tokens.merchant_directory import DynamoDBMerchantDirectory
from card_tokens.merchants import Merchant, new_merchant_id, new_publishable_key, principal_of

ACCOUNT = "123456789012"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def session_arn(role: str) -> str:
    """What API Gateway puts in userArn for a SigV4 request signed by the role's session."""
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/checkout-backend"


class Clock:
    """The directory's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Registry:
    table: str
    clock: Clock
    directory: DynamoDBMerchantDirectory

    def add(self, name: str, origins: tuple[str, ...], principals: tuple[str, ...]) -> Merchant:
        merchant = Merchant(
            merchant_id=new_merchant_id(),
            name=name,
            publishable_key=new_publishable_key(),
            origins=origins,
            principals=tuple(principal_of(arn) for arn in principals),
        )
        client = boto3.client("dynamodb")
        client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"merchant#{merchant.merchant_id}"},
                "merchant_id": {"S": merchant.merchant_id},
                "name": {"S": name},
                "publishable_key": {"S": merchant.publishable_key},
                "origins": {"L": [{"S": origin} for origin in origins]},
                "principals": {"L": [{"S": arn} for arn in merchant.principals]},
                "created_at": {"N": str(int(time.time()))},
            },
        )
        for pk in [f"key#{merchant.publishable_key}"] + [
            f"principal#{arn}" for arn in merchant.principals
        ]:
            client.put_item(
                TableName=self.table,
                Item={"pk": {"S": pk}, "merchant_id": {"S": merchant.merchant_id}},
            )
        client.update_item(
            TableName=self.table,
            Key={"pk": {"S": "registry"}},
            UpdateExpression="ADD merchants :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
        return merchant

    def rotate_key(self, merchant: Merchant) -> Merchant:
        rotated = replace(merchant, publishable_key=new_publishable_key())
        client = boto3.client("dynamodb")
        client.delete_item(
            TableName=self.table, Key={"pk": {"S": f"key#{merchant.publishable_key}"}}
        )
        client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"key#{rotated.publishable_key}"},
                "merchant_id": {"S": merchant.merchant_id},
            },
        )
        client.update_item(
            TableName=self.table,
            Key={"pk": {"S": f"merchant#{merchant.merchant_id}"}},
            UpdateExpression="SET publishable_key = :key",
            ExpressionAttributeValues={":key": {"S": rotated.publishable_key}},
        )
        return rotated


@pytest.fixture(name="registry")
def registry_fixture(
    issue_token_app: ModuleType, process_payment_app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Registry]:
    """A fresh registry table, read by the handlers' issuer and cashier through a directory
    with the test's clock (the wired ones keep the stack's empty registry)."""
    table = f"merchants-{uuid.uuid4().hex[:12]}"
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    clock = Clock()
    directory = DynamoDBMerchantDirectory(table, clock=clock)
    issuer = dataclasses.replace(wiring.issuer(), merchants=directory)
    cashier = dataclasses.replace(wiring.cashier(), merchants=directory)
    monkeypatch.setattr(issue_token_app, "issuer", lambda: issuer)
    monkeypatch.setattr(process_payment_app, "cashier", lambda: cashier)
    try:
        yield Registry(table, clock, directory)
    finally:
        client.delete_table(TableName=table)


def with_key(event: dict[str, Any], publishable_key: str | None, origin: str | None = None) -> Any:
    """A POST /tokens event carrying a publishable key (Authorization: Bearer) and an Origin."""
    from tests.flows import set_header

    set_header(
        event, "Authorization", None if publishable_key is None else f"Bearer {publishable_key}"
    )
    return set_header(event, "Origin", origin)


def signed_by(event: dict[str, Any], arn: str | None) -> dict[str, Any]:
    """A /payments event as API Gateway passes it after verifying the caller's SigV4."""
    event["requestContext"]["identity"]["userArn"] = arn
    return event
