"""The merchant registry's read side: DynamoDB GetItem behind a cache with a stated bound.

Every answer is cached for `max_age_seconds` (MERCHANT_CACHE_SECONDS), the unknown ones too,
so a warm execution environment makes no registry call, and neither does a stream of junk keys.
That is the staleness bound: a rotated publishable key, a removed merchant or principal keeps
working for at most that long in an environment that cached it; a new merchant may wait as long
to be seen by one that cached its absence. A SnapStart restore drops the cache (reset(),
card_tokens.snapstart): the clock is time.monotonic, meaningless in another environment.

Items (written by the operator's CLI, one transaction per change, so they agree):
`merchant#<id>` (the merchant), `key#<publishable key>` and `principal#<principal ARN>` (each
naming its merchant_id), `registry` (how many merchants; absent or 0 means single-caller mode).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from card_tokens.aws_errors import read_item
from card_tokens.config import MERCHANT_CACHE_SECONDS
from card_tokens.merchants import MERCHANT_ID, PUBLISHABLE_KEY, Merchant, principal_of

_REGISTRY = "registry"
_deserializer = TypeDeserializer()


class DynamoDBMerchantDirectory:
    """MerchantDirectory on the registry table, cached per lookup (hits and misses alike)."""

    def __init__(
        self,
        table_name: str,
        *,
        max_age_seconds: int = MERCHANT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table_name
        self._max_age = max_age_seconds
        self._clock = clock
        self._answers: dict[str, tuple[float, Any]] = {}

    def reset(self) -> None:
        """Forget every cached answer (after a SnapStart restore; tests)."""
        self._answers.clear()

    def by_publishable_key(self, publishable_key: str) -> Merchant | None:
        if not PUBLISHABLE_KEY.fullmatch(publishable_key):
            return None  # not a key we could have made: no registry read
        merchant = self._cached(f"key#{publishable_key}", self._merchant_via)
        # The merchant item is the truth: a key rotated away between the two reads is refused.
        return merchant if merchant and merchant.publishable_key == publishable_key else None

    def by_principal(self, principal_arn: str) -> Merchant | None:
        principal = principal_of(principal_arn)
        merchant = self._cached(f"principal#{principal}", self._merchant_via)
        return merchant if merchant and principal in merchant.principals else None

    def is_empty(self) -> bool:
        count = self._cached(_REGISTRY, self._merchant_count)
        return bool(count == 0)

    def _cached(self, pk: str, look_up: Callable[[str], Any]) -> Any:
        now = self._clock()
        cached = self._answers.get(pk)
        if cached is not None and now - cached[0] < self._max_age:
            return cached[1]
        answer = look_up(pk)
        self._answers[pk] = (now, answer)
        return answer

    def _merchant_via(self, pk: str) -> Merchant | None:
        """The merchant an index item (key# or principal#) names, or None."""
        index = self._get(pk)
        merchant_id = index.get("merchant_id", {}).get("S") if index else None
        if not isinstance(merchant_id, str) or not MERCHANT_ID.fullmatch(merchant_id):
            return None
        item = self._get(f"merchant#{merchant_id}")
        return _merchant_from(item) if item else None

    def _merchant_count(self, pk: str) -> int:
        item = self._get(pk)
        return int(item["merchants"]["N"]) if item and "merchants" in item else 0

    def _get(self, pk: str) -> dict[str, Any] | None:
        # A cut-short answer is a 503, never "no such item": a registry read as empty would
        # let an issuer mint unbound tokens for as long as the answer stays cached.
        return read_item(self._table, {"pk": {"S": pk}})


def _merchant_from(item: dict[str, Any]) -> Merchant | None:
    values = {name: _deserializer.deserialize(value) for name, value in item.items()}
    try:
        return Merchant(
            merchant_id=str(values["merchant_id"]),
            name=str(values["name"]),
            publishable_key=str(values["publishable_key"]),
            # A list or a string set, whichever the writer used: compared as exact strings.
            origins=tuple(sorted(str(origin) for origin in values.get("origins") or ())),
            principals=tuple(
                sorted(principal_of(str(arn)) for arn in values.get("principals") or ())
            ),
        )
    except KeyError:
        return None  # an item cut short or malformed: no merchant rather than a guess
