"""An in-memory MerchantDirectory for tests of the use cases without a registry table."""

from __future__ import annotations

from collections.abc import Iterable

from card_tokens.merchants import Merchant, principal_of


class InMemoryMerchants:
    """The registry's answers, uncached (the cache is the DynamoDB adapter's own concern)."""

    def __init__(self, merchants: Iterable[Merchant] = ()) -> None:
        self.merchants = list(merchants)

    def by_publishable_key(self, publishable_key: str) -> Merchant | None:
        return next((m for m in self.merchants if m.publishable_key == publishable_key), None)

    def by_principal(self, principal_arn: str) -> Merchant | None:
        principal = principal_of(principal_arn)
        return next((m for m in self.merchants if principal in m.principals), None)

    def is_empty(self) -> bool:
        return not self.merchants
