"""The PaymentProcessor port on Stripe: a PaymentMethod from the card, then a PaymentIntent.

Stripe's published API takes raw card fields only on POST /v1/payment_methods (card[number],
card[exp_month], card[exp_year], card[cvc]); POST /v1/payment_intents then confirms a charge
with that PaymentMethod. Both requests carry an Idempotency-Key derived from the token's jti,
so a resend (ours or the SDK's retry) never makes a second PaymentMethod or a second charge.

Reconciliation (find_charge) searches PaymentIntents on metadata['idempotency_key']: an
Idempotency-Key replay would need the card again and expires after 24 hours, a search does
not. Stripe's search index lags writes (usually under a minute, up to an hour in outages), so
the caller must only trust "no charge" for a payment older than that lag.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import stripe

from card_tokens.cards import Card
from card_tokens.config import ConfigurationError
from card_tokens.observability import logger, pin_sdk_loggers
from card_tokens.processor import (
    ChargeResult,
    ProcessorFailure,
    ProcessorIdempotencyConflict,
    ProcessorOutcomeUnknown,
)
from card_tokens.records import contract_decline_code

# Stripe's "an error occurred while processing the card": a card_error, yet no decline by the
# issuer; nothing is charged, and the same request fails the same way (the contract's 502).
_PROCESSING_ERROR = "processing_error"

# The API version the tests' schemas were checked for (make stripe-spec-check): pinned, so a
# newer SDK cannot change what a request means (2023-08-16 made automatic payment methods the
# default, which then asks for a return_url); payment_method_types defaults to card.
STRIPE_API_VERSION = "2020-08-27"

# jtis are base64url: nothing in them can break out of the search query's quotes.
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")


@dataclass(frozen=True)
class StripeTimeouts:
    """Per-attempt timeouts and retries; worst_case_seconds() must fit the function's budget."""

    # No retry by the SDK: a second attempt would double the worst case, and a charge whose
    # answer is lost is in doubt, for find_charge to settle (by the caller or the reconciler).
    connect_seconds: float = 1.0
    read_seconds: float = 3.0
    max_network_retries: int = 0

    def worst_case_seconds(self, requests: int) -> float:
        attempts = 1 + self.max_network_retries
        # stripe-python waits at most INITIAL_DELAY * 2**(n-1), capped at MAX_DELAY, before retry n.
        backoff: float = sum(
            min(
                stripe.HTTPClient.INITIAL_DELAY * 2 ** (retry - 1),
                stripe.HTTPClient.MAX_DELAY,
            )
            for retry in range(1, attempts)
        )
        per_request = attempts * (self.connect_seconds + self.read_seconds) + backoff
        # Per connection attempt: DNS, and an address list tried in turn, come on top.
        return requests * per_request


# A charge is two requests (PaymentMethod, PaymentIntent); a lookup is one search.
CHARGE_REQUESTS = 2
LOOKUP_REQUESTS = 1
_API_KEY_PREFIXES = ("sk_", "rk_")


class StripeProcessor:
    # Stripe documents that search lags writes by under a minute, up to an hour during outages:
    # "no PaymentIntent under this key" proves nothing about a charge younger than that.
    lookup_lag_seconds: int = 3600

    def __init__(
        self,
        api_key: str,
        *,
        timeouts: StripeTimeouts | None = None,
        api_base: str | None = None,
        charges: bool = True,
    ) -> None:
        _refuse_sdk_console_logging()
        # False in the reconciler: it holds a lookup key and must never send a card anywhere.
        self._charges = charges
        self.timeouts = timeouts or StripeTimeouts()
        http_client = stripe.RequestsClient(
            timeout=(self.timeouts.connect_seconds, self.timeouts.read_seconds)
        )
        self._client = stripe.StripeClient(
            api_key,
            stripe_version=STRIPE_API_VERSION,
            max_network_retries=self.timeouts.max_network_retries,
            http_client=http_client,
            base_addresses={"api": api_base} if api_base else None,
        )

    @classmethod
    def from_secret(
        cls, document: Mapping[str, Any], *, api_base: str | None = None, charges: bool = True
    ) -> StripeProcessor:
        """The processor for a Secrets Manager document {"api_key": "sk_..." or "rk_..."}.

        A lookup-only document (a restricted key rk_... allowed to read PaymentIntents only)
        is valid: find_charge works. Built with charges=False (the reconciler), charge() is
        refused here, before the card is sent; with such a key and charges=True, Stripe
        refuses it (403), raised as ProcessorFailure. Errors never quote the document.
        """
        api_key = document.get("api_key")
        if not isinstance(api_key, str) or not api_key.strip():
            raise ConfigurationError("the Stripe secret has no api_key")
        if not api_key.strip().startswith(_API_KEY_PREFIXES):
            raise ConfigurationError(
                "the Stripe secret's api_key is not a secret or restricted key"
            )
        return cls(api_key.strip(), api_base=api_base, charges=charges)

    @classmethod
    def worst_case_seconds(cls, timeouts: StripeTimeouts | None = None) -> float:
        """The longest a payment can wait on Stripe: a charge, then a lookup of it."""
        used = timeouts or StripeTimeouts()
        return used.worst_case_seconds(CHARGE_REQUESTS + LOOKUP_REQUESTS)

    def charge(
        self, *, card: Card, amount: int, currency: str, idempotency_key: str, payment_id: str
    ) -> ChargeResult:
        if not self._charges:
            raise ProcessorFailure("stripe processor holds a lookup key only here")
        key = _checked_key(idempotency_key)
        try:
            method = self._client.v1.payment_methods.create(
                params={
                    "type": "card",
                    "card": {
                        "number": card.pan,
                        "exp_month": card.exp_month,
                        "exp_year": card.exp_year,
                        "cvc": card.cvv,
                    },
                },
                options={"idempotency_key": f"{key}-payment-method"},
            )
            intent = self._client.v1.payment_intents.create(
                params={
                    "amount": amount,
                    "currency": currency.lower(),
                    "payment_method": method.id,
                    "confirm": True,
                    "metadata": {"payment_id": payment_id, "idempotency_key": key},
                },
                options={"idempotency_key": f"{key}-payment-intent"},
            )
        except stripe.CardError as error:
            return _declined(error, amount, currency)
        except stripe.IdempotencyError:
            raise self._key_reused(key) from None
        except stripe.StripeError as error:
            raise _translated(error, "charge") from None
        result = _result(intent)
        if result is None:
            raise _processing_failed()
        return result

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        intent = self._intent_under(_checked_key(idempotency_key))
        return None if intent is None else _result(intent)

    def _intent_under(self, key: str) -> Any:
        """The PaymentIntent made under the key, or None if the search has none (yet)."""
        try:
            found = self._client.v1.payment_intents.search(
                params={"query": f"metadata['idempotency_key']:'{key}'", "limit": 2}
            )
        except stripe.StripeError as error:
            raise _unknown("search", type(error).__name__) from None
        intents = list(found.data)
        if len(intents) > 1:
            # The Idempotency-Key allows one PaymentIntent per key: two means we cannot tell.
            raise _unknown("search", "several_payment_intents")
        return intents[0] if intents else None

    def _key_reused(self, key: str) -> Exception:
        """Stripe keeps the first answer under a key, even a refusal: a request with other
        parameters then gets an idempotency error. What that first request left decides."""
        intent = self._intent_under(key)
        if intent is None:
            # No PaymentIntent found: the search may lag, so nothing is known.
            return _unknown("charge", "key_reused_not_found")
        if _result(intent) is None:
            # Refused unpaid (processing_error): this token's charge fails the same way.
            return _processing_failed()
        return ProcessorIdempotencyConflict("idempotency key reused with other params")


def _refuse_sdk_console_logging() -> None:
    # stripe-python logs every POST body at DEBUG (card[number] and card[cvc] included): its
    # logger is pinned with the AWS SDK's, and it prints to stderr when told to by these.
    pin_sdk_loggers()
    for setting in (stripe.log, os.environ.get("STRIPE_LOG")):
        if setting in ("debug", "info"):
            raise ValueError("stripe console logging would print card data: unset it")


def _checked_key(idempotency_key: str) -> str:
    if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise ValueError("idempotency key is not a token id")
    return idempotency_key


def _result(intent: Any) -> ChargeResult | None:
    """What Stripe's books say of a PaymentIntent; None when the processor failed it unpaid."""
    status = intent.status
    if status == "succeeded":
        return ChargeResult("approved", None, intent.id, intent.amount, intent.currency.upper())
    if status == "processing":
        raise _unknown("payment_intent", "processing")
    if status in ("requires_payment_method", "requires_action", "canceled"):
        # Not charged: declined, or a card asking for authentication this server cannot give.
        # Stripe leaves last_payment_error out (or null) until a confirmation fails.
        error = getattr(intent, "last_payment_error", None)
        if getattr(error, "code", None) == _PROCESSING_ERROR:
            return None
        stripe_code = getattr(error, "decline_code", None)
        return ChargeResult(
            "declined",
            contract_decline_code(stripe_code),
            intent.id,
            intent.amount,
            intent.currency.upper(),
        )
    # requires_capture holds funds, requires_confirmation does not: with confirm=true and
    # automatic capture neither should happen, and "nothing charged" would be a guess.
    raise _unknown("payment_intent", f"status_{status}")


def _declined(error: stripe.CardError, amount: int, currency: str) -> ChargeResult:
    details = error.error
    intent = details.payment_intent if details else None
    stripe_code = details.decline_code if details else None
    logger.info(
        "stripe declined the charge",
        extra={"stripe_code": error.code, "stripe_decline_code": stripe_code},
    )
    if error.code == _PROCESSING_ERROR:
        raise _processing_failed()
    if intent is None:
        # A decline at PaymentMethod creation (e.g. incorrect number): nothing was charged.
        raise ProcessorFailure("stripe refused the card")
    return ChargeResult(
        "declined",
        contract_decline_code(stripe_code),
        intent.id,
        amount,
        currency,
    )


def _translated(error: stripe.StripeError, operation: str) -> Exception:
    if isinstance(error, stripe.IdempotencyError):
        return ProcessorIdempotencyConflict("idempotency key reused with other params")
    # No answer, or a 5xx: Stripe documents both as "the request may have been processed".
    if isinstance(error, stripe.APIConnectionError) or (error.http_status or 0) >= 500:
        return _unknown(operation, type(error).__name__)
    logger.warning(
        "stripe refused the request",
        extra={"operation": operation, "error": type(error).__name__, "code": error.code},
    )
    return ProcessorFailure(f"stripe refused the {operation}: {type(error).__name__}")


def _processing_failed() -> ProcessorFailure:
    return ProcessorFailure("stripe could not process the card")


def _unknown(operation: str, reason: str) -> ProcessorOutcomeUnknown:
    logger.warning("stripe unavailable", extra={"operation": operation, "reason": reason})
    return ProcessorOutcomeUnknown(f"stripe {operation} failed: {reason}")
