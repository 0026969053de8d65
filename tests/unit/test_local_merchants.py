"""local.merchants: the demo merchant and the test merchants, registered through the operator's
registry on moto, each with a local IAM user whose profile signs its payments."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.emulator import in_process_aws
from local.iam import CredentialsFile, user_arn
from local.merchants import DEMO_PROFILE, add_local_merchant, demo_merchant, registry
from local.provision import create_tables_from_template

ORIGINS = ["http://127.0.0.1:3000", "http://localhost:3000"]


@pytest.fixture
def where(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with in_process_aws("unit-tests"):
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        stack_name = f"t{uuid.uuid4().hex[:12]}"
        create_tables_from_template(dynamodb, stack_name)
        yield {
            "stack_name": stack_name,
            "dynamodb_client": dynamodb,
            "credentials": CredentialsFile(tmp_path / "credentials"),
        }


def test_the_demo_merchant_is_registered_with_its_user_as_principal_and_a_profile(
    where: dict[str, Any],
) -> None:
    demo = demo_merchant(ORIGINS, **where)

    [registered] = registry(where["stack_name"], where["dynamodb_client"]).list()
    assert registered["merchant_id"] == demo.merchant_id
    assert registered["publishable_key"] == demo.publishable_key
    assert registered["origins"] == ORIGINS
    assert registered["principals"] == [user_arn(DEMO_PROFILE)]
    assert where["credentials"].user(DEMO_PROFILE) == demo.user


def test_a_stack_started_again_on_the_same_endpoint_keeps_its_demo_merchant(
    where: dict[str, Any],
) -> None:
    first = demo_merchant(ORIGINS, **where)

    again = demo_merchant(ORIGINS, **where)

    assert again == first
    assert len(registry(where["stack_name"], where["dynamodb_client"]).list()) == 1


def test_a_demo_merchant_whose_profile_is_gone_is_replaced(
    where: dict[str, Any], tmp_path: Path
) -> None:
    first = demo_merchant(ORIGINS, **where)
    where["credentials"] = CredentialsFile(tmp_path / "another-credentials")

    again = demo_merchant(ORIGINS, **where)

    assert again.merchant_id != first.merchant_id
    assert again.user.access_key_id != first.user.access_key_id
    [registered] = registry(where["stack_name"], where["dynamodb_client"]).list()
    assert registered["merchant_id"] == again.merchant_id


def test_a_test_merchant_gets_its_own_user_and_profile(where: dict[str, Any]) -> None:
    demo = demo_merchant(ORIGINS, **where)

    shop = add_local_merchant("shop", ["https://shop.example"], **where)

    assert shop.profile == "card-tokens-shop"
    assert shop.user.arn == user_arn("card-tokens-shop")
    assert shop.publishable_key != demo.publishable_key
    users = where["credentials"].users()
    assert users[shop.user.access_key_id] == shop.user
    assert users[demo.user.access_key_id] == demo.user
    assert shop.user.secret_access_key not in repr(shop)
