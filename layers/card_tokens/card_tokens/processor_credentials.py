"""An external processor built from its credentials in Secrets Manager, rebuilt when they change.

Two secrets, so that least privilege holds per function: PROCESSOR_SECRET_ID (what charging
needs) only the payment function may read; PROCESSOR_LOOKUP_SECRET_ID (what find_charge needs)
the reconciler reads too, and so can look a charge up but never make one.

The secrets are read through the process-wide KEYS store (Powertools' cache, SECRET_CACHE_SECONDS):
a rolled API key is picked up within that bound, with no redeploy and no cold start; a SnapStart
restore drops it with the rest (card_tokens.snapstart).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from card_tokens.cards import Card
from card_tokens.config import ConfigurationError
from card_tokens.errors import ServiceUnavailable
from card_tokens.key_store import KEYS
from card_tokens.observability import logger
from card_tokens.processor import ChargeResult, PaymentProcessor, ProcessorOutcomeUnknown


@dataclass(frozen=True)
class ProcessorSecrets:
    # None in the reconciler: its adapter can look up and never charge.
    charge: Mapping[str, Any] | None
    lookup: Mapping[str, Any]


# Builds an adapter from the documents; raises ConfigurationError or a ValueError (the
# adapters' settings errors) when they are unusable.
Build = Callable[[ProcessorSecrets], PaymentProcessor]


class CredentialedProcessor:
    """The PaymentProcessor port in front of an adapter built from the current secrets.

    Unreadable or unusable credentials never count as an answer from the processor: before a
    charge they are a 503 with nothing sent (the cashier gives the token back); before a lookup
    they are "no answer" (the payment stays in doubt, nothing is released).
    """

    def __init__(
        self,
        build: Build,
        *,
        charge_secret_id: str | None,
        lookup_secret_id: str,
        fetch: Callable[[str], dict[str, Any]] | None = None,
    ) -> None:
        self._build = build
        self._charge_secret_id = charge_secret_id
        self._lookup_secret_id = lookup_secret_id
        self._fetch = fetch if fetch is not None else KEYS.fetch_secret_json
        self._built: tuple[ProcessorSecrets, PaymentProcessor] | None = None

    @property
    def lookup_lag_seconds(self) -> int:
        return self._adapter().lookup_lag_seconds

    def worst_case_seconds(self) -> float:
        return self._adapter().worst_case_seconds()

    def charge(
        self, *, card: Card, amount: int, currency: str, idempotency_key: str, payment_id: str
    ) -> ChargeResult:
        adapter = self._adapter()
        return adapter.charge(
            card=card,
            amount=amount,
            currency=currency,
            idempotency_key=idempotency_key,
            payment_id=payment_id,
        )

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        try:
            adapter = self._adapter()
        except ServiceUnavailable:
            raise ProcessorOutcomeUnknown("processor credentials unavailable") from None
        return adapter.find_charge(idempotency_key)

    def _adapter(self) -> PaymentProcessor:
        secrets = ProcessorSecrets(
            charge=self._fetch(self._charge_secret_id) if self._charge_secret_id else None,
            lookup=self._fetch(self._lookup_secret_id),
        )
        if self._built is None or self._built[0] != secrets:
            try:
                self._built = (secrets, self._build(secrets))
            except (ValueError, ConfigurationError) as error:
                # The type only: a parser's message can quote what it read (a key, a PEM).
                logger.error(
                    "processor credentials unusable", extra={"error": type(error).__name__}
                )
                raise ServiceUnavailable("processor") from None
        return self._built[1]
