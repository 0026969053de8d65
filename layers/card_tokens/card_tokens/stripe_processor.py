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

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

import stripe

from card_tokens.cards import Card
from card_tokens.observability import logger
from card_tokens.processor import (
    ChargeResult,
    ProcessorFailure,
    ProcessorIdempotencyConflict,
    ProcessorOutcomeUnknown,
)

# stripe-python logs every POST body at DEBUG (card[number] and card[cvc] included), and
# prints it to stderr when stripe.log or STRIPE_LOG says "debug" or "info".
_STRIPE_LOGGER = "stripe"
_STRIPE_LOG_LEVEL = logging.WARNING

# The contract knows two decline codes; every other Stripe decline is a plain card_declined.
_DECLINE_CODES = {"insufficient_funds": "insufficient_funds"}
DEFAULT_DECLINE_CODE = "card_declined"

# The API version of the vendored spec the tests check against (tests/processors/vectors/stripe):
# pinned, so a newer SDK cannot change what a request means (2023-08-16 made automatic payment
# methods the default, which then asks for a return_url); payment_method_types defaults to card.
STRIPE_API_VERSION = "2020-08-27"

# jtis are base64url: nothing in them can break out of the search query's quotes.
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")


@dataclass(frozen=True)
class StripeTimeouts:
    """Per-attempt timeouts and retries; worst_case_seconds() must fit the function's budget."""

    connect_seconds: float = 1.0
    read_seconds: float = 4.0
    max_network_retries: int = 1

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
        return requests * per_request


# A charge is two requests (PaymentMethod, PaymentIntent); a lookup is one search.
CHARGE_REQUESTS = 2


class StripeProcessor:
    def __init__(
        self,
        api_key: str,
        *,
        timeouts: StripeTimeouts | None = None,
        api_base: str | None = None,
    ) -> None:
        _refuse_sdk_body_logging()
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

    def charge(
        self, *, card: Card, amount: int, currency: str, idempotency_key: str, payment_id: str
    ) -> ChargeResult:
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
        except stripe.StripeError as error:
            raise _translated(error, "charge") from None
        return _result(intent)

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        key = _checked_key(idempotency_key)
        try:
            found = self._client.v1.payment_intents.search(
                params={"query": f"metadata['idempotency_key']:'{key}'", "limit": 2}
            )
        except stripe.StripeError as error:
            raise _unknown("search", type(error).__name__) from None
        intents = list(found.data)
        if not intents:
            return None
        if len(intents) > 1:
            # The Idempotency-Key allows one PaymentIntent per key: two means we cannot tell.
            raise _unknown("search", "several_payment_intents")
        return _result(intents[0])


def _refuse_sdk_body_logging() -> None:
    sdk_logger = logging.getLogger(_STRIPE_LOGGER)
    sdk_logger.setLevel(max(_STRIPE_LOG_LEVEL, sdk_logger.level))
    for setting in (stripe.log, os.environ.get("STRIPE_LOG")):
        if setting in ("debug", "info"):
            raise ValueError("stripe console logging would print card data: unset it")


def _checked_key(idempotency_key: str) -> str:
    if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise ValueError("idempotency key is not a token id")
    return idempotency_key


def _result(intent: Any) -> ChargeResult:
    status = intent.status
    if status == "succeeded":
        return ChargeResult("approved", None, intent.id, intent.amount, intent.currency.upper())
    if status == "processing":
        raise _unknown("payment_intent", "processing")
    if status in ("requires_payment_method", "requires_action", "canceled"):
        # Not charged: declined, or a card asking for authentication this server cannot give.
        error = intent.last_payment_error
        stripe_code = getattr(error, "decline_code", None) if error else None
        return ChargeResult(
            "declined",
            _DECLINE_CODES.get(stripe_code or "", DEFAULT_DECLINE_CODE),
            intent.id,
            intent.amount,
            intent.currency.upper(),
        )
    logger.warning("stripe payment intent in an unexpected state", extra={"status": status})
    raise ProcessorFailure(f"stripe payment intent status {status}")


def _declined(error: stripe.CardError, amount: int, currency: str) -> ChargeResult:
    details = error.error
    intent = details.payment_intent if details else None
    stripe_code = details.decline_code if details else None
    logger.info(
        "stripe declined the charge",
        extra={"stripe_code": error.code, "stripe_decline_code": stripe_code},
    )
    if intent is None:
        # A decline at PaymentMethod creation (e.g. incorrect number): nothing was charged.
        raise ProcessorFailure("stripe refused the card")
    return ChargeResult(
        "declined",
        _DECLINE_CODES.get(stripe_code or "", DEFAULT_DECLINE_CODE),
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


def _unknown(operation: str, reason: str) -> ProcessorOutcomeUnknown:
    logger.warning("stripe unavailable", extra={"operation": operation, "reason": reason})
    return ProcessorOutcomeUnknown(f"stripe {operation} failed: {reason}")
