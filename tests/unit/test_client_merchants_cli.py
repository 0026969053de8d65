"""`card-tokens merchants …` on moto (in-process): JSON out, exit codes, --table and --stack."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from card_tokens_client.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from local.emulator import in_process_aws
from tests.unit.test_client_merchants import (
    OTHER_ROLE,
    SHOP,
    SHOP_ROLE,
    TABLE,
    create_registry_table,
    items,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

STACK = "card-tokens-staging"


@pytest.fixture
def dynamodb() -> Iterator[DynamoDBClient]:
    with in_process_aws("client-merchants-cli"):
        client = boto3.client("dynamodb")
        create_registry_table(client)
        yield client


def cli(*argv: str) -> tuple[int, Any, str]:
    """Exit code, the JSON printed (None if nothing), what went to stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, json.loads(out.getvalue()) if out.getvalue() else None, err.getvalue()


def add(*more: str, where: tuple[str, ...] = ("--table", TABLE)) -> tuple[int, Any, str]:
    return cli("merchants", "add", *where, "--name", "Shop", *more)


def test_add_list_rotate_remove_through_the_cli(dynamodb: DynamoDBClient) -> None:
    code, merchant, _ = add("--origin", SHOP, "--principal", SHOP_ROLE)
    assert code == EXIT_OK
    assert merchant["origins"] == [SHOP]
    assert merchant["principals"] == [SHOP_ROLE]

    assert cli("merchants", "list", "--table", TABLE)[:2] == (EXIT_OK, [merchant])

    code, rotated, _ = cli("merchants", "rotate-key", merchant["merchant_id"], "--table", TABLE)
    assert code == EXIT_OK
    assert rotated == {**merchant, "publishable_key": rotated["publishable_key"]}
    assert rotated["publishable_key"] != merchant["publishable_key"]

    code, removed, _ = cli("merchants", "remove", merchant["merchant_id"], "--table", TABLE)
    assert code == EXIT_OK
    assert removed == {"merchant_id": merchant["merchant_id"], "removed": True}
    assert cli("merchants", "list", "--table", TABLE)[:2] == (EXIT_OK, [])
    assert set(items(dynamodb)) == {"registry"}


def test_options_before_the_command_are_kept(dynamodb: DynamoDBClient) -> None:
    region = dynamodb.meta.region_name

    code, merchants, _ = cli("--region", region, "merchants", "list", "--table", TABLE)

    assert (code, merchants) == (EXIT_OK, [])


def _deploy_stack_with(outputs: dict[str, Any]) -> None:
    resources = {"Registry": {"Type": "AWS::SNS::Topic", "Properties": {}}}
    body = {"Resources": resources, "Outputs": outputs}
    boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(body))


def test_stack_names_the_registry_by_its_output(dynamodb: DynamoDBClient) -> None:
    _deploy_stack_with({"MerchantTableName": {"Value": TABLE}})

    code, merchant, _ = add("--principal", SHOP_ROLE, where=("--stack", STACK))

    assert code == EXIT_OK
    assert set(items(dynamodb)) >= {f"merchant#{merchant['merchant_id']}"}


def test_a_stack_without_the_output_is_an_error_that_says_so(dynamodb: DynamoDBClient) -> None:
    _deploy_stack_with({"TokenTableName": {"Value": "card-tokens-tokens"}})

    code, out, err = add("--principal", SHOP_ROLE, where=("--stack", STACK))

    assert (code, out) == (EXIT_ERROR, None)
    assert f"stack {STACK} has no MerchantTableName output" in err
    assert items(dynamodb) == {}


@pytest.mark.parametrize(
    "where", [(), ("--table", TABLE, "--stack", STACK)], ids=["neither", "both"]
)
def test_the_registry_is_named_by_table_or_stack_exactly_once(
    dynamodb: DynamoDBClient, where: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        add("--principal", SHOP_ROLE, where=where)

    assert usage.value.code == EXIT_USAGE
    assert "--table" in capsys.readouterr().err
    assert items(dynamodb) == {}


@pytest.mark.parametrize(
    "bad",
    [
        ("--origin", "http://shop.example", "--principal", SHOP_ROLE),
        ("--principal", "arn:aws:iam::111122223333:role/path/shop"),
        ("--principal", "shop-backend"),
    ],
    ids=["plain-http-origin", "role-with-path", "not-an-arn"],
)
def test_invalid_input_is_a_usage_error_and_writes_nothing(
    dynamodb: DynamoDBClient, bad: tuple[str, ...]
) -> None:
    code, out, err = add(*bad)

    assert (code, out) == (EXIT_USAGE, None)
    assert err.startswith("card-tokens: error: ")
    assert items(dynamodb) == {}


def test_a_principal_of_another_merchant_is_refused_naming_that_merchant(
    dynamodb: DynamoDBClient,
) -> None:
    first = add("--principal", SHOP_ROLE)[1]
    before = items(dynamodb)

    code, out, err = add("--principal", OTHER_ROLE, "--principal", SHOP_ROLE)

    assert (code, out) == (EXIT_ERROR, None)
    assert f"{SHOP_ROLE} already pays for merchant {first['merchant_id']}" in err
    assert items(dynamodb) == before


@pytest.mark.parametrize("action", ["rotate-key", "remove"])
def test_an_unknown_merchant_is_an_error(dynamodb: DynamoDBClient, action: str) -> None:
    code, out, err = cli("merchants", action, "mer_aaaaaaaaaaaaaaaa", "--table", TABLE)

    assert (code, out) == (EXIT_ERROR, None)
    assert "no merchant mer_aaaaaaaaaaaaaaaa" in err


def test_aws_refusing_is_an_error_naming_the_call(dynamodb: DynamoDBClient) -> None:
    code, out, err = cli("merchants", "list", "--table", "no-such-table")

    assert (code, out) == (EXIT_ERROR, None)
    assert "AWS refused Scan: ResourceNotFoundException" in err
