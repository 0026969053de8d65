"""MerchantRegistry and `card-tokens merchants` on moto (in-process): every change keeps the four
kinds of item consistent, and a refused change writes nothing."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from card_tokens.merchants import MERCHANT_ID, PUBLISHABLE_KEY, principal_of
from card_tokens_client.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from card_tokens_client.merchants import (
    ConcurrentChange,
    InvalidMerchant,
    MerchantRegistry,
    PrincipalTaken,
    UnknownMerchant,
    valid_origin,
    valid_principal,
)
from local.cfn import load_template
from local.emulator import in_process_aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TABLE = "card-tokens-merchants"
SHOP_ROLE = "arn:aws:iam::111122223333:role/shop-backend"
SHOP_USER = "arn:aws:iam::111122223333:user/ops/shop-batch"
OTHER_ROLE = "arn:aws:iam::444455556666:role/other-shop"
SHOP = "https://shop.example"
NOW = 1_790_000_000
STACK = "card-tokens-staging"


def create_registry_table(dynamodb: DynamoDBClient, table: str = TABLE) -> None:
    """The registry table as template.yaml declares it (key schema and billing)."""
    properties = load_template()["Resources"]["MerchantTable"]["Properties"]
    dynamodb.create_table(
        TableName=table,
        KeySchema=properties["KeySchema"],
        AttributeDefinitions=properties["AttributeDefinitions"],
        BillingMode=properties["BillingMode"],
    )


@pytest.fixture
def dynamodb() -> Iterator[DynamoDBClient]:
    with in_process_aws("client-merchants"):
        client = boto3.client("dynamodb")
        create_registry_table(client)
        yield client
        # moto keeps its state while another mock_aws (the session's stack) is active.
        client.delete_table(TableName=TABLE)
        cloudformation = boto3.client("cloudformation")
        if any(s["StackName"] == STACK for s in cloudformation.list_stacks()["StackSummaries"]):
            cloudformation.delete_stack(StackName=STACK)


@pytest.fixture
def registry(dynamodb: DynamoDBClient) -> MerchantRegistry:
    return MerchantRegistry(TABLE, dynamodb, clock=lambda: NOW)


def items(dynamodb: DynamoDBClient) -> dict[str, dict[str, Any]]:
    """Every item of the table by its pk, as stored."""
    found = dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return {item["pk"]["S"]: item for item in found}


def count(dynamodb: DynamoDBClient) -> int:
    registry = items(dynamodb).get("registry")
    return int(registry["merchants"]["N"]) if registry else 0


def items_of(merchant: dict[str, Any]) -> set[str]:
    """The pks a merchant owns: itself, its key, each principal."""
    return {
        f"merchant#{merchant['merchant_id']}",
        f"key#{merchant['publishable_key']}",
        *(f"principal#{arn}" for arn in merchant["principals"]),
    }


def assert_consistent(dynamodb: DynamoDBClient, merchants: list[dict[str, Any]]) -> None:
    """The table holds exactly these merchants' items, each index naming its merchant, and
    the count."""
    stored = items(dynamodb)
    expected = set().union(*(items_of(m) for m in merchants)) | ({"registry"} if stored else set())
    assert set(stored) == expected
    for merchant in merchants:
        for pk in items_of(merchant) - {f"merchant#{merchant['merchant_id']}"}:
            assert stored[pk] == {
                "pk": {"S": pk},
                "merchant_id": {"S": merchant["merchant_id"]},
            }
    assert count(dynamodb) == len(merchants)


def test_add_writes_the_merchant_its_key_its_principals_and_the_count(
    dynamodb: DynamoDBClient, registry: MerchantRegistry
) -> None:
    merchant = registry.add("Shop", [SHOP, "http://127.0.0.1:8000"], [SHOP_ROLE, SHOP_USER])

    assert MERCHANT_ID.fullmatch(merchant["merchant_id"])
    assert PUBLISHABLE_KEY.fullmatch(merchant["publishable_key"])
    assert merchant == {
        "merchant_id": merchant["merchant_id"],
        "name": "Shop",
        "publishable_key": merchant["publishable_key"],
        "origins": [SHOP, "http://127.0.0.1:8000"],
        "principals": [SHOP_ROLE, SHOP_USER],
        "created_at": NOW,
    }
    assert_consistent(dynamodb, [merchant])
    assert items(dynamodb)[f"merchant#{merchant['merchant_id']}"] == {
        "pk": {"S": f"merchant#{merchant['merchant_id']}"},
        "merchant_id": {"S": merchant["merchant_id"]},
        "name": {"S": "Shop"},
        "publishable_key": {"S": merchant["publishable_key"]},
        "origins": {"L": [{"S": SHOP}, {"S": "http://127.0.0.1:8000"}]},
        "principals": {"L": [{"S": SHOP_ROLE}, {"S": SHOP_USER}]},
        "created_at": {"N": str(NOW)},
    }


def test_list_returns_every_merchant_oldest_first(dynamodb: DynamoDBClient) -> None:
    times = iter([NOW + 5, NOW])
    registry = MerchantRegistry(TABLE, dynamodb, clock=lambda: next(times))
    later = registry.add("Later", [SHOP], [SHOP_ROLE])
    earlier = registry.add("Earlier", [], [OTHER_ROLE])

    assert registry.list() == [earlier, later]
    assert_consistent(dynamodb, [earlier, later])


def test_rotate_key_moves_the_key_item_and_keeps_the_rest(
    dynamodb: DynamoDBClient, registry: MerchantRegistry
) -> None:
    merchant = registry.add("Shop", [SHOP], [SHOP_ROLE])

    rotated = registry.rotate_key(merchant["merchant_id"])

    assert rotated == {**merchant, "publishable_key": rotated["publishable_key"]}
    assert rotated["publishable_key"] != merchant["publishable_key"]
    assert PUBLISHABLE_KEY.fullmatch(rotated["publishable_key"])
    assert f"key#{merchant['publishable_key']}" not in items(dynamodb)
    assert registry.list() == [rotated]
    assert_consistent(dynamodb, [rotated])


def test_remove_deletes_every_item_of_the_merchant_and_the_last_ends_multi_merchant_mode(
    dynamodb: DynamoDBClient, registry: MerchantRegistry
) -> None:
    kept = registry.add("Kept", [SHOP], [OTHER_ROLE])
    removed = registry.add("Removed", [], [SHOP_ROLE, SHOP_USER])

    registry.remove(removed["merchant_id"])

    assert registry.list() == [kept]
    assert_consistent(dynamodb, [kept])
    # Removing the last one leaves a count of 0: single-caller mode again
    registry.remove(kept["merchant_id"])
    assert set(items(dynamodb)) == {"registry"}
    assert count(dynamodb) == 0


def test_a_principal_pays_for_one_merchant_only_and_a_refused_add_writes_nothing(
    dynamodb: DynamoDBClient, registry: MerchantRegistry
) -> None:
    first = registry.add("First", [SHOP], [SHOP_ROLE])
    before = items(dynamodb)

    # The new principal comes first, the taken one second: the whole transaction is refused.
    with pytest.raises(PrincipalTaken, match=first["merchant_id"]) as refused:
        registry.add("Second", [], [OTHER_ROLE, SHOP_ROLE])

    assert SHOP_ROLE in str(refused.value)
    assert items(dynamodb) == before
    assert_consistent(dynamodb, [first])


def test_the_same_principal_twice_in_one_add_is_one_principal(
    dynamodb: DynamoDBClient, registry: MerchantRegistry
) -> None:
    merchant = registry.add("Shop", [SHOP, SHOP], [SHOP_ROLE, SHOP_ROLE])

    assert merchant["principals"] == [SHOP_ROLE]
    assert merchant["origins"] == [SHOP]
    assert_consistent(dynamodb, [merchant])


class RacingClient:
    """A client on which another operator's rotation lands between our read and our write."""

    def __init__(self, dynamodb: DynamoDBClient, merchant_id: str) -> None:
        self._dynamodb = dynamodb
        self._merchant_id = merchant_id
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dynamodb, name)

    def transact_write_items(self, **request: Any) -> Any:
        if not self.raced:
            self.raced = True
            MerchantRegistry(TABLE, self._dynamodb).rotate_key(self._merchant_id)
        return self._dynamodb.transact_write_items(**request)


@pytest.mark.parametrize("change", ["rotate_key", "remove"])
def test_a_change_that_lost_a_race_is_refused_and_writes_nothing(
    dynamodb: DynamoDBClient, registry: MerchantRegistry, change: str
) -> None:
    merchant = registry.add("Shop", [SHOP], [SHOP_ROLE])
    racing = RacingClient(dynamodb, merchant["merchant_id"])
    stale = MerchantRegistry(TABLE, racing)  # type: ignore[arg-type]

    with pytest.raises(ConcurrentChange):
        getattr(stale, change)(merchant["merchant_id"])

    # Only the other operator's rotation happened
    assert racing.raced
    (winner,) = registry.list()
    assert winner == {**merchant, "publishable_key": winner["publishable_key"]}
    assert winner["publishable_key"] != merchant["publishable_key"]
    assert_consistent(dynamodb, [winner])


@pytest.mark.parametrize("merchant_id", ["mer_aaaaaaaaaaaaaaaa", "mer_x", "", "merchant#x"])
@pytest.mark.parametrize("change", ["rotate_key", "remove"])
def test_an_unknown_merchant_is_refused_and_nothing_is_written(
    dynamodb: DynamoDBClient, registry: MerchantRegistry, change: str, merchant_id: str
) -> None:
    kept = registry.add("Kept", [SHOP], [SHOP_ROLE])

    with pytest.raises(UnknownMerchant):
        getattr(registry, change)(merchant_id)

    assert_consistent(dynamodb, [kept])


@pytest.mark.parametrize(
    ("name", "origins", "principals"),
    [
        ("", [SHOP], [SHOP_ROLE]),
        (" Shop", [SHOP], [SHOP_ROLE]),
        ("x" * 65, [SHOP], [SHOP_ROLE]),
        ("Shop\nInjected: line", [SHOP], [SHOP_ROLE]),
        ("Shop", [SHOP], []),
        ("Shop", ["https://shop.example/checkout"], [SHOP_ROLE]),
        ("Shop", [SHOP], ["arn:aws:iam::111122223333:root"]),
        ("Shop", [SHOP], [f"{SHOP_ROLE}{i}" for i in range(26)]),
        ("Shop", [f"https://shop{i}.example" for i in range(26)], [SHOP_ROLE]),
    ],
)
def test_invalid_input_is_refused_before_any_write(
    dynamodb: DynamoDBClient,
    registry: MerchantRegistry,
    name: str,
    origins: list[str],
    principals: list[str],
) -> None:
    with pytest.raises(InvalidMerchant):
        registry.add(name, origins, principals)

    assert items(dynamodb) == {}


# Origins as a browser sends them in `Origin`; principals as IAM role or user ARNs.
ORIGIN_RULE, PRINCIPAL_RULE = "https://host", "IAM role or user ARN"


@pytest.mark.parametrize(
    ("check", "value", "accepted"),
    [
        (valid_origin, "https://shop.example", True),
        (valid_origin, "https://shop.example:8443", True),
        (valid_origin, "https://192.0.2.10", True),
        (valid_origin, "http://127.0.0.1:8000", True),
        (valid_origin, "http://localhost:3000", True),
        (valid_origin, "http://shop.example", False),  # plain http only on this machine
        (valid_origin, "https://shop.example/", False),
        (valid_origin, "https://shop.example/pay", False),
        (valid_origin, "https://shop.example?x=1", False),
        (valid_origin, "https://Shop.Example", False),  # browsers send the host in lower case
        (valid_origin, "https://shop.example:443", False),  # and never the default port
        (valid_origin, "https://user@shop.example", False),
        (valid_origin, "https://shop.example:99999", False),
        (valid_origin, "https://*.shop.example", False),
        (valid_origin, "shop.example", False),
        (valid_origin, "null", False),
        (valid_origin, "javascript://shop.example", False),
        (valid_principal, SHOP_ROLE, True),
        (valid_principal, SHOP_USER, True),
        (valid_principal, "arn:aws-us-gov:iam::111122223333:role/shop", True),
        (valid_principal, "arn:aws-cn:iam::111122223333:user/shop", True),
        (valid_principal, "arn:aws:iam::111122223333:root", False),
        (valid_principal, "arn:aws:sts::111122223333:assumed-role/shop/session", False),
        (valid_principal, "arn:aws:iam::1111:role/shop", False),
        (valid_principal, "arn:aws:iam::111122223333:group/shop", False),
        (valid_principal, "arn:aws:iam::111122223333:role/", False),
        (valid_principal, "*", False),
        (valid_principal, "shop-backend", False),
    ],
)
def test_origins_and_principals_the_registry_takes(
    check: Callable[[str], str], value: str, accepted: bool
) -> None:
    if accepted:
        assert check(value) == value
    else:
        rule = ORIGIN_RULE if check is valid_origin else PRINCIPAL_RULE
        with pytest.raises(InvalidMerchant, match=rule):
            check(value)


def test_a_role_with_a_path_is_refused_with_the_arn_to_register() -> None:
    # Sessions of the role present arn:aws:sts::…:assumed-role/shop-backend/…: no path.
    with pytest.raises(InvalidMerchant, match=f"without its path: {SHOP_ROLE} "):
        valid_principal("arn:aws:iam::111122223333:role/service/payments/shop-backend")


# ------------------------------------------------------------------ round trip
# What the CLI writes is what the functions read. The layer's reader is its adapter,
# card_tokens.merchant_directory (GetItem on key#, principal#, merchant# and registry); this
# reads the same items the same way and holds the written formats to the layer's own.


def merchant_at(dynamodb: DynamoDBClient, pk: str) -> str | None:
    """The merchant_id an item names, read as the directory reads it (GetItem), or None."""
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": pk}}).get("Item")
    return item["merchant_id"]["S"] if item else None


def test_round_trip_merchant_directory_reads_what_the_registry_writes(
    dynamodb: DynamoDBClient, registry: MerchantRegistry
) -> None:
    merchant = registry.add("Shop", [SHOP], [SHOP_ROLE, SHOP_USER])
    merchant_id = merchant["merchant_id"]
    assumed = "arn:aws:sts::111122223333:assumed-role/shop-backend/session-1"

    # The count makes the deployment multi-merchant
    assert count(dynamodb) == 1
    # The publishable key as the issuer looks it up; a session of the registered role and the
    # user as payments look them up (principal_of the caller): each names the merchant
    assert merchant_at(dynamodb, f"key#{merchant['publishable_key']}") == merchant_id
    for caller in (assumed, SHOP_USER):
        assert merchant_at(dynamodb, f"principal#{principal_of(caller)}") == merchant_id, caller
    # and the merchant item holds what the layer's model takes, in its formats
    stored = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"merchant#{merchant_id}"}})
    item = stored["Item"]
    assert MERCHANT_ID.fullmatch(item["merchant_id"]["S"])
    assert PUBLISHABLE_KEY.fullmatch(item["publishable_key"]["S"])
    assert {principal_of(p["S"]) for p in item["principals"]["L"]} == {SHOP_ROLE, SHOP_USER}
    assert [o["S"] for o in item["origins"]["L"]] == [SHOP]

    # After a rotation the old key names nothing, the new one the merchant
    rotated = registry.rotate_key(merchant_id)
    assert merchant_at(dynamodb, f"key#{merchant['publishable_key']}") is None
    assert merchant_at(dynamodb, f"key#{rotated['publishable_key']}") == merchant_id


# ------------------------------------------------------------------ the command line
# `card-tokens merchants …`: JSON out, exit codes, --table and --stack.


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
