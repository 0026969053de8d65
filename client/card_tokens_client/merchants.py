"""The merchant registry's write side, for the operator: add, list, re-key and remove merchants.

One DynamoDB table holds four kinds of item, and every change is one TransactWriteItems, so the
functions (which only read, with GetItem) never see them disagree:
- `merchant#<merchant_id>`: merchant_id, name, publishable_key, origins, principals, created_at
- `key#<publishable_key>` and `principal#<principal ARN>`: the merchant_id they belong to
- `registry`: `merchants`, how many there are; absent or 0 is single-caller mode.

Ids and keys follow the layer's formats (card_tokens.merchants: `mer_` + 16 and `pk_` + 24 base32
characters); the client does not import the layer, and a round-trip test holds the two together.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

REGISTRY_ITEM = "registry"
MERCHANT, KEY, PRINCIPAL = "merchant#", "key#", "principal#"
CONDITION_FAILED = "ConditionalCheckFailed"
MAX_NAME = 64
# One transaction holds at most 100 items: a merchant, its key, the count and its principals.
MAX_PRINCIPALS = 25
MAX_ORIGINS = 25
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
MERCHANT_ID = re.compile(r"mer_[a-z2-7]{16}", re.ASCII)
# Roles without their path: the functions look a caller up as `arn:…:role/<Name>` (an assumed
# role's ARN carries no path), so a role registered with its path would never match.
_ROLE = re.compile(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@-]{1,64}", re.ASCII)
_USER = re.compile(r"arn:aws[\w-]*:iam::\d{12}:user/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}", re.ASCII)
_ROLE_WITH_PATH = re.compile(r"(arn:aws[\w-]*:iam::\d{12}:role/)(?:[\w+=,.@-]+/)+([\w+=,.@-]+)")
_HOST = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
# Plain http only for a checkout page on this machine (the local stack's).
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})
_DEFAULT_PORTS = {"https": 443, "http": 80}


class RegistryError(Exception):
    """A change the registry refused; the message names what to fix (no key, no card data)."""


class InvalidMerchant(RegistryError, ValueError):
    """A name, origin or principal the registry does not take."""


class UnknownMerchant(RegistryError, LookupError):
    pass


class PrincipalTaken(RegistryError):
    """A principal pays for one merchant only: it names the merchant of a payment."""


class ConcurrentChange(RegistryError):
    """Another operator changed this merchant meanwhile: nothing was written; try again."""


def new_merchant_id() -> str:
    return _random_id("mer_", 16)


def new_publishable_key() -> str:
    """Random and not secret (it is in the checkout page): 120 bits."""
    return _random_id("pk_", 24)


def _random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_BASE32) for _ in range(length))


# ---------------------------------------------------------------------------- validation


def valid_name(name: str) -> str:
    if not name or name != name.strip() or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidMerchant(
            f"the name must be 1 to {MAX_NAME} printable characters, without surrounding spaces"
        )
    return name


def valid_origin(origin: str) -> str:
    """scheme://host[:port] exactly as a browser sends it in `Origin`: lower case, no path, no
    default port; https, or http for a page on this machine."""
    rule = (
        f"origin {origin!r} must be https://host[:port] (or http://localhost or "
        "http://127.0.0.1 with a port), in lower case, with no path"
    )
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError as error:
        raise InvalidMerchant(rule) from error
    host = parts.hostname or ""
    secure = parts.scheme == "https" or (parts.scheme == "http" and host in _LOCAL_HOSTS)
    if (
        not secure
        or not (_HOST.fullmatch(host) or _is_ipv4(host))
        or port == _DEFAULT_PORTS[parts.scheme]
        or origin != f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    ):
        raise InvalidMerchant(rule)
    return origin


def _is_ipv4(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address)
    except ValueError:
        return False


def valid_principal(arn: str) -> str:
    if _ROLE.fullmatch(arn) or _USER.fullmatch(arn):
        return arn
    with_path = _ROLE_WITH_PATH.fullmatch(arn)
    if with_path:
        raise InvalidMerchant(
            f"give the role without its path: {with_path[1]}{with_path[2]} (a role's "
            "sessions are matched by account and name)"
        )
    raise InvalidMerchant(
        f"principal {arn!r} must be an IAM role or user ARN: arn:aws:iam::<account>:role/<Name> "
        "or arn:aws:iam::<account>:user/<Name>"
    )


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _valid_merchant_id(merchant_id: str) -> str:
    if not MERCHANT_ID.fullmatch(merchant_id):
        raise UnknownMerchant(f"no merchant {merchant_id[:40]!r}: ids look like mer_…")
    return merchant_id


# ---------------------------------------------------------------------------- items


def _s(value: str) -> dict[str, Any]:
    return {"S": value}


def _merchant_of(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "merchant_id": item["merchant_id"]["S"],
        "name": item["name"]["S"],
        "publishable_key": item["publishable_key"]["S"],
        "origins": [value["S"] for value in item["origins"]["L"]],
        "principals": [value["S"] for value in item["principals"]["L"]],
        "created_at": int(item["created_at"]["N"]),
    }


def _item_of(merchant: dict[str, Any]) -> dict[str, Any]:
    return {
        "pk": _s(MERCHANT + merchant["merchant_id"]),
        "merchant_id": _s(merchant["merchant_id"]),
        "name": _s(merchant["name"]),
        "publishable_key": _s(merchant["publishable_key"]),
        "origins": {"L": [_s(origin) for origin in merchant["origins"]]},
        "principals": {"L": [_s(arn) for arn in merchant["principals"]]},
        "created_at": {"N": str(merchant["created_at"])},
    }


class MerchantRegistry:
    """Writes with the operator's credentials: no function role may (docs/design.md)."""

    def __init__(
        self,
        table_name: str,
        dynamodb_client: DynamoDBClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table_name
        self._dynamodb = dynamodb_client
        self._clock = clock

    def add(self, name: str, origins: Sequence[str], principals: Sequence[str]) -> dict[str, Any]:
        """A new merchant with a new publishable key; the count goes up in the same write."""
        payers = _unique(valid_principal(arn) for arn in principals)
        checkouts = _unique(valid_origin(origin) for origin in origins)
        if not payers or len(payers) > MAX_PRINCIPALS:
            raise InvalidMerchant(f"give 1 to {MAX_PRINCIPALS} principals that pay for it")
        if len(checkouts) > MAX_ORIGINS:
            raise InvalidMerchant(f"give at most {MAX_ORIGINS} checkout origins")
        merchant_id, key = new_merchant_id(), new_publishable_key()
        merchant = {
            "merchant_id": merchant_id,
            "name": valid_name(name),
            "publishable_key": key,
            "origins": checkouts,
            "principals": payers,
            "created_at": int(self._clock()),
        }
        writes = [
            self._put_new(_item_of(merchant)),
            self._put_index(KEY + key, merchant_id),
            *(self._put_index(PRINCIPAL + arn, merchant_id) for arn in payers),
            self._count(+1),
        ]
        self._transact(writes, lambda reasons: self._add_refused(payers, reasons))
        return merchant

    def list(self) -> list[dict[str, Any]]:
        """Every merchant, oldest first. A Scan: an operator's command, never on a request path."""
        items: list[dict[str, Any]] = []
        pages = self._dynamodb.get_paginator("scan").paginate(
            TableName=self._table,
            ConsistentRead=True,
            FilterExpression="begins_with(pk, :merchant)",
            ExpressionAttributeValues={":merchant": _s(MERCHANT)},
        )
        for page in pages:
            items += [_merchant_of(item) for item in page.get("Items", [])]
        return sorted(items, key=lambda m: (m["created_at"], m["merchant_id"]))

    def rotate_key(self, merchant_id: str) -> dict[str, Any]:
        """A new publishable key; the old one is refused once the functions' cache expires."""
        merchant = self._get(merchant_id)
        old_key, new_key = merchant["publishable_key"], new_publishable_key()
        self._transact(
            [
                self._delete_index(KEY + old_key, merchant_id),
                self._put_index(KEY + new_key, merchant_id),
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {"pk": _s(MERCHANT + merchant_id)},
                        "UpdateExpression": "SET publishable_key = :new",
                        # Unchanged since we read it: two rotations at once cannot both win.
                        "ConditionExpression": "publishable_key = :old",
                        "ExpressionAttributeValues": {":new": _s(new_key), ":old": _s(old_key)},
                    }
                },
            ],
            _changed_meanwhile,
        )
        return {**merchant, "publishable_key": new_key}

    def remove(self, merchant_id: str) -> None:
        """The merchant, its key and its principals; its payments stay in the payment table."""
        merchant = self._get(merchant_id)
        self._transact(
            [
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": {"pk": _s(MERCHANT + merchant_id)},
                        "ConditionExpression": "publishable_key = :key",
                        "ExpressionAttributeValues": {":key": _s(merchant["publishable_key"])},
                    }
                },
                self._delete_index(KEY + merchant["publishable_key"], merchant_id),
                *(
                    self._delete_index(PRINCIPAL + arn, merchant_id)
                    for arn in merchant["principals"]
                ),
                self._count(-1),
            ],
            _changed_meanwhile,
        )

    # ------------------------------------------------------------------ helpers

    def _get(self, merchant_id: str) -> dict[str, Any]:
        response = self._dynamodb.get_item(
            TableName=self._table,
            Key={"pk": _s(MERCHANT + _valid_merchant_id(merchant_id))},
            ConsistentRead=True,
        )
        if "Item" not in response:
            raise UnknownMerchant(f"no merchant {merchant_id}")
        return _merchant_of(response["Item"])

    def _owner(self, principal: str) -> str:
        response = self._dynamodb.get_item(
            TableName=self._table, Key={"pk": _s(PRINCIPAL + principal)}, ConsistentRead=True
        )
        return str(response.get("Item", {}).get("merchant_id", {}).get("S", "(unknown)"))

    def _add_refused(self, principals: Sequence[str], reasons: Sequence[str]) -> RegistryError:
        # The items in order: merchant, key, each principal, the count.
        taken = [
            arn
            for arn, reason in zip(principals, reasons[2:-1], strict=False)
            if reason == CONDITION_FAILED
        ]
        if taken:
            return PrincipalTaken(
                f"{taken[0]} already pays for merchant {self._owner(taken[0])}: remove it there "
                "first; nothing was written"
            )
        return _changed_meanwhile(reasons)  # a new id or key already taken: 2^-80, or a bug

    def _transact(
        self,
        writes: Sequence[TransactWriteItemTypeDef],
        refused: Callable[[Sequence[str]], RegistryError],
    ) -> None:
        """All or nothing; a failed condition becomes `refused(reasons)`."""
        try:
            self._dynamodb.transact_write_items(TransactItems=writes)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            reasons = _reasons(error)
            if code == "TransactionCanceledException" and CONDITION_FAILED in reasons:
                raise refused(reasons) from None
            raise

    def _put_new(self, item: dict[str, Any]) -> TransactWriteItemTypeDef:
        return {
            "Put": {
                "TableName": self._table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _put_index(self, pk: str, merchant_id: str) -> TransactWriteItemTypeDef:
        return self._put_new({"pk": _s(pk), "merchant_id": _s(merchant_id)})

    def _delete_index(self, pk: str, merchant_id: str) -> TransactWriteItemTypeDef:
        return {
            "Delete": {
                "TableName": self._table,
                "Key": {"pk": _s(pk)},
                "ConditionExpression": "merchant_id = :merchant",
                "ExpressionAttributeValues": {":merchant": _s(merchant_id)},
            }
        }

    def _count(self, change: int) -> TransactWriteItemTypeDef:
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": _s(REGISTRY_ITEM)},
                "UpdateExpression": "ADD merchants :change",
                "ExpressionAttributeValues": {":change": {"N": str(change)}},
            }
        }


def _changed_meanwhile(reasons: Sequence[str]) -> RegistryError:
    return ConcurrentChange(
        "the registry changed while this command ran: nothing was written; run it again"
    )


def _reasons(error: ClientError) -> list[str]:
    """Each transaction item's cancellation code, in order ("None" for the ones that passed)."""
    reasons = error.response.get("CancellationReasons", [])
    return [str(reason.get("Code", "None")) for reason in reasons]
