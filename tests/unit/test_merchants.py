"""The merchant model (merchants.py) and the registry's cached read side (merchant_directory.py)."""

from __future__ import annotations

from typing import Any

import pytest

from card_tokens import aws_errors
from card_tokens.config import MERCHANT_CACHE_SECONDS
from card_tokens.errors import ServiceUnavailable
from card_tokens.merchant_directory import DynamoDBMerchantDirectory
from card_tokens.merchants import (
    MERCHANT_ID,
    PUBLISHABLE_KEY,
    Caller,
    Merchant,
    merchant_matches,
    new_merchant_id,
    new_publishable_key,
    principal_of,
)
from card_tokens.snapstart import after_restore
from card_tokens.wiring import merchant_directory as wired_directory

from .fake_merchants import InMemoryMerchants

ROLE = "arn:aws:iam::123456789012:role/ShopBackend"
SHOP = Merchant(
    merchant_id="mer_aaaaaaaaaaaaaaaa",
    name="Shop",
    publishable_key="pk_" + "a" * 24,
    origins=("https://shop.example",),
    principals=(ROLE,),
)
OTHER = Merchant(
    merchant_id="mer_bbbbbbbbbbbbbbbb",
    name="Other",
    publishable_key="pk_" + "b" * 24,
    origins=(),
    principals=("arn:aws:iam::123456789012:user/other",),
)


# ---------------------------------------------------------------- the model


def test_new_ids_and_keys_have_their_documented_shape_and_differ() -> None:
    keys = {new_publishable_key() for _ in range(50)}
    ids = {new_merchant_id() for _ in range(50)}
    assert len(keys) == len(ids) == 50
    assert all(PUBLISHABLE_KEY.fullmatch(key) for key in keys)
    assert all(MERCHANT_ID.fullmatch(merchant_id) for merchant_id in ids)


@pytest.mark.parametrize(
    ("arn", "principal"),
    [
        ("arn:aws:sts::123456789012:assumed-role/ShopBackend/session-1", ROLE),
        ("arn:aws:iam::123456789012:role/service/team/ShopBackend", ROLE),
        (ROLE, ROLE),
        ("arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/alice"),
        (
            "arn:aws-cn:sts::123456789012:assumed-role/R/s",
            "arn:aws-cn:iam::123456789012:role/R",
        ),
    ],
)
def test_a_role_its_paths_and_its_sessions_are_one_principal(arn: str, principal: str) -> None:
    assert principal_of(arn) == principal


def test_no_origin_is_a_server_side_caller_and_a_browser_must_match_exactly() -> None:
    assert SHOP.allows_origin(None)
    assert SHOP.allows_origin("https://shop.example")
    assert not SHOP.allows_origin("https://shop.example.evil")
    assert not SHOP.allows_origin("http://shop.example")
    assert not OTHER.allows_origin("https://shop.example")


@pytest.mark.parametrize(
    ("registered", "caller", "owner", "allowed"),
    [
        ((), Caller(), None, True),  # single-caller mode
        ((), Caller(ROLE), None, True),  # single-caller mode, signed
        ((SHOP,), Caller(ROLE), SHOP.merchant_id, True),
        (
            (SHOP,),
            Caller("arn:aws:sts::123456789012:assumed-role/ShopBackend/s"),
            SHOP.merchant_id,
            True,
        ),
        ((SHOP, OTHER), Caller(OTHER.principals[0]), SHOP.merchant_id, False),
        ((SHOP,), Caller(), SHOP.merchant_id, False),  # unsigned
        ((SHOP,), Caller(), None, False),  # a merchant-less object once merchants exist
        ((SHOP,), Caller("arn:aws:iam::123456789012:user/nobody"), None, False),
        ((SHOP,), Caller(ROLE), None, False),
    ],
)
def test_only_the_owner_s_principals_act_for_an_object(
    registered: tuple[Merchant, ...], caller: Caller, owner: str | None, allowed: bool
) -> None:
    assert merchant_matches(InMemoryMerchants(registered), caller, owner) is allowed


# ---------------------------------------------------------------- the cached directory


class FakeRegistry:
    """A GetItem-only DynamoDB client over registry items, counting the reads."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.reads: list[str] = []
        self.cut_short = False  # answer as a response cut short would: no capacity, no Item

    def register(self, merchant: Merchant) -> None:
        self.items[f"merchant#{merchant.merchant_id}"] = {
            "pk": {"S": f"merchant#{merchant.merchant_id}"},
            "merchant_id": {"S": merchant.merchant_id},
            "name": {"S": merchant.name},
            "publishable_key": {"S": merchant.publishable_key},
            "origins": {"L": [{"S": origin} for origin in merchant.origins]},
            "principals": {"L": [{"S": arn} for arn in merchant.principals]},
            "created_at": {"N": "1800000000"},
        }
        self.items[f"key#{merchant.publishable_key}"] = {"merchant_id": {"S": merchant.merchant_id}}
        for arn in merchant.principals:
            self.items[f"principal#{arn}"] = {"merchant_id": {"S": merchant.merchant_id}}
        count = int(self.items.get("registry", {}).get("merchants", {}).get("N", "0"))
        self.items["registry"] = {"merchants": {"N": str(count + 1)}}

    def rotate_key(self, merchant: Merchant, new_key: str) -> None:
        del self.items[f"key#{merchant.publishable_key}"]
        self.items[f"key#{new_key}"] = {"merchant_id": {"S": merchant.merchant_id}}
        self.items[f"merchant#{merchant.merchant_id}"]["publishable_key"] = {"S": new_key}

    def get_item(
        self,
        *,
        TableName: str,
        Key: dict[str, Any],
        ConsistentRead: bool,
        ReturnConsumedCapacity: str,
    ) -> dict[str, Any]:
        assert TableName == "merchants"
        # The operator's last change must be seen, and a cut-short answer told apart.
        assert ConsistentRead
        assert ReturnConsumedCapacity == "TOTAL"
        pk = Key["pk"]["S"]
        self.reads.append(pk)
        if self.cut_short:
            return {}
        item = self.items.get(pk)
        answer: dict[str, Any] = {"ConsumedCapacity": {"TableName": TableName}}
        return answer | ({"Item": item} if item is not None else {})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    fake = FakeRegistry()
    monkeypatch.setattr(aws_errors, "dynamodb_client", lambda: fake)
    return fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory(registry: FakeRegistry, clock: Clock) -> DynamoDBMerchantDirectory:
    return DynamoDBMerchantDirectory("merchants", clock=clock)


def test_a_registered_merchant_is_found_by_its_key_and_by_each_principal_form(
    registry: FakeRegistry, directory: DynamoDBMerchantDirectory
) -> None:
    registry.register(SHOP)
    assert directory.by_publishable_key(SHOP.publishable_key) == SHOP
    assert directory.by_principal("arn:aws:sts::123456789012:assumed-role/ShopBackend/s1") == SHOP
    assert not directory.is_empty()


def test_an_empty_registry_is_single_caller_mode(directory: DynamoDBMerchantDirectory) -> None:
    assert directory.is_empty()
    assert directory.by_publishable_key(SHOP.publishable_key) is None
    assert directory.by_principal(ROLE) is None


@pytest.mark.parametrize(
    "look_up",
    [
        lambda directory: directory.is_empty(),
        lambda directory: directory.by_publishable_key(SHOP.publishable_key),
        lambda directory: directory.by_principal(ROLE),
    ],
    ids=["registry", "publishable_key", "principal"],
)
def test_a_cut_short_registry_answer_is_unavailable_and_not_cached_as_absent(
    registry: FakeRegistry, directory: DynamoDBMerchantDirectory, look_up: Any
) -> None:
    # Read as "no item", a cut-short registry answer would be single-caller mode (unbound
    # tokens) or an unknown key, and stay so for MERCHANT_CACHE_SECONDS.
    registry.register(SHOP)
    registry.cut_short = True
    with pytest.raises(ServiceUnavailable):
        look_up(directory)
    registry.cut_short = False
    assert not directory.is_empty()
    assert directory.by_publishable_key(SHOP.publishable_key) == SHOP
    assert directory.by_principal(ROLE) == SHOP


def test_a_warm_directory_makes_no_registry_call(
    registry: FakeRegistry, directory: DynamoDBMerchantDirectory, clock: Clock
) -> None:
    registry.register(SHOP)
    directory.is_empty()
    directory.by_publishable_key(SHOP.publishable_key)
    directory.by_principal(ROLE)
    cold = list(registry.reads)
    assert cold == [
        "registry",
        f"key#{SHOP.publishable_key}",
        f"merchant#{SHOP.merchant_id}",
        f"principal#{ROLE}",
        f"merchant#{SHOP.merchant_id}",
    ]
    clock.now += MERCHANT_CACHE_SECONDS - 1
    for _ in range(3):
        assert not directory.is_empty()
        assert directory.by_publishable_key(SHOP.publishable_key) == SHOP
        assert directory.by_principal(ROLE) == SHOP
    assert registry.reads == cold


def test_unknown_answers_are_cached_too_and_junk_keys_are_never_looked_up(
    registry: FakeRegistry, directory: DynamoDBMerchantDirectory
) -> None:
    unknown = "pk_" + "c" * 24
    for _ in range(3):
        assert directory.by_publishable_key(unknown) is None
        assert directory.by_principal("arn:aws:iam::123456789012:user/nobody") is None
    assert registry.reads == [f"key#{unknown}", "principal#arn:aws:iam::123456789012:user/nobody"]
    for junk in ("", "pk_short", "sk_" + "a" * 24, "pk_" + "A" * 24, "pk_" + "a" * 24 + " "):
        assert directory.by_publishable_key(junk) is None
    assert len(registry.reads) == 2


def test_a_rotated_key_works_until_the_cache_ages_past_the_bound_then_never(
    registry: FakeRegistry, directory: DynamoDBMerchantDirectory, clock: Clock
) -> None:
    registry.register(SHOP)
    old_key = SHOP.publishable_key
    assert directory.by_publishable_key(old_key) == SHOP
    new_key = "pk_" + "d" * 24
    registry.rotate_key(SHOP, new_key)
    # Within the bound the environment's cached answer stands: the stated staleness
    clock.now += MERCHANT_CACHE_SECONDS - 0.5
    assert directory.by_publishable_key(old_key) == SHOP
    # Past it the old key is refused and the new one works
    clock.now += 1
    assert directory.by_publishable_key(old_key) is None
    found = directory.by_publishable_key(new_key)
    assert found is not None
    assert found.publishable_key == new_key


def test_a_merchant_registered_while_absence_was_cached_is_seen_after_the_bound(
    registry: FakeRegistry, directory: DynamoDBMerchantDirectory, clock: Clock
) -> None:
    assert directory.is_empty()
    registry.register(SHOP)
    assert directory.is_empty()  # cached: the same bound holds for a new merchant
    clock.now += MERCHANT_CACHE_SECONDS
    assert not directory.is_empty()


def test_a_key_whose_index_outlived_its_merchant_item_is_refused(
    registry: FakeRegistry, directory: DynamoDBMerchantDirectory
) -> None:
    # The index still names the merchant but its item has another key: the item is the truth
    registry.register(SHOP)
    registry.items[f"merchant#{SHOP.merchant_id}"]["publishable_key"] = {"S": "pk_" + "e" * 24}
    assert directory.by_publishable_key(SHOP.publishable_key) is None


def test_reset_forgets_every_answer(
    registry: FakeRegistry, directory: DynamoDBMerchantDirectory
) -> None:
    directory.is_empty()
    registry.register(SHOP)
    directory.reset()
    assert not directory.is_empty()
    assert registry.reads == ["registry", "registry"]


def test_a_snapstart_restore_resets_the_wired_directories(registry: FakeRegistry) -> None:
    wired = wired_directory("merchants", 60)
    assert wired is wired_directory("merchants", 60)  # one per table and environment
    wired.is_empty()
    registry.register(SHOP)
    assert wired.is_empty()  # cached
    after_restore()
    assert not wired.is_empty()
    assert registry.reads == ["registry", "registry"]
