"""Domain errors; `card_tokens.api` turns them into HTTP responses in one place.

A refusal about one field names it twice: in `field`, and in its message, which says what is
wrong and what is expected ("cvv must be 4 digits for American Express."). A required field
that is absent, null or "" is `invalid_request` ("currency is required."); the field's own code
(invalid_card_number, invalid_amount...) is for a value that is there and wrong. The defaults
below are for a raise without a message: the validators always give one.
"""

from __future__ import annotations


class CardTokensError(Exception):
    """Base of every error the API reports. `message` is safe to show: it never holds input."""

    status = 500
    code = "internal_error"
    message = "The request could not be processed."

    def __init_subclass__(
        cls, *, status: int = 0, code: str = "", message: str = "", **kwargs: object
    ) -> None:
        """Each error declares its own HTTP status, code and default message in its header."""
        super().__init_subclass__(**kwargs)
        cls.status = status or cls.status
        cls.code = code or cls.code
        cls.message = message or cls.message

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or type(self).message
        self.field = field
        super().__init__(self.message)


class InvalidRequest(
    CardTokensError, status=400, code="invalid_request", message="The request is not valid."
):
    pass


class InvalidCardNumber(
    InvalidRequest, code="invalid_card_number", message="card_number is not a valid card number."
):
    pass


class CardExpired(InvalidRequest, code="card_expired", message="The card has expired."):
    pass


class InvalidExpiry(
    InvalidRequest,
    code="invalid_expiry",
    message="exp_month and exp_year must be a valid expiry month and year.",
):
    pass


class InvalidCvv(
    InvalidRequest, code="invalid_cvv", message="cvv must be 3 digits, or 4 for American Express."
):
    pass


class InvalidAmount(
    InvalidRequest,
    code="invalid_amount",
    message="amount must be an integer number of minor units from 1 to 99999999.",
):
    pass


class UnsupportedCurrency(
    InvalidRequest,
    code="unsupported_currency",
    message="currency must be one of the supported ISO 4217 codes.",
):
    pass


class InvalidPublishableKey(
    CardTokensError,
    status=401,
    code="invalid_publishable_key",
    message=(
        "The request needs Authorization: Bearer with a current publishable key of a "
        "registered merchant."
    ),
):
    """Missing, malformed, unknown or rotated away: one answer, the request's value never quoted."""


class OriginNotAllowed(
    CardTokensError,
    status=403,
    code="origin_not_allowed",
    message="The page's origin is not one of the merchant's checkout origins.",
):
    """A browser page the key's merchant did not register: its key may have been copied."""


class InvalidToken(
    CardTokensError, status=401, code="invalid_token", message="The token is not valid."
):
    """One code and one message for every verification failure; the reason goes to logs only."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        # A fixed vocabulary (e.g. "expired", "bad_signature"): safe for logs and metrics.
        self.reason = reason


class PaymentNotFound(
    CardTokensError, status=404, code="payment_not_found", message="No payment has this id."
):
    pass


class TokenAlreadyUsed(
    CardTokensError,
    status=409,
    code="token_already_used",
    message="The token has already been used.",
):
    pass


class PayloadTooLarge(
    CardTokensError,
    status=413,
    code="payload_too_large",
    message="The request body is larger than 16 KiB.",
):
    pass


class UnsupportedMediaType(
    CardTokensError,
    status=415,
    code="unsupported_media_type",
    message="The request body must be application/json.",
):
    pass


class IdempotencyKeyReused(
    CardTokensError,
    status=422,
    code="idempotency_key_reused",
    message="The Idempotency-Key was already used with a different request body.",
):
    pass


class ProcessorError(
    CardTokensError,
    status=502,
    code="processor_error",
    message="The payment processor failed and nothing was charged; the token can be used again.",
):
    pass


class ServiceUnavailable(
    CardTokensError,
    status=503,
    code="service_unavailable",
    message="A dependency is unavailable; retry later.",
):
    retry_after = 2

    def __init__(self, dependency: str) -> None:
        super().__init__()
        # Which AWS service failed ("kms", "dynamodb", "secretsmanager"): for logs and metrics.
        self.dependency = dependency


class PaymentInProgress(
    CardTokensError,
    status=503,
    code="payment_in_progress",
    message=(
        "The payment's outcome is not settled yet; retry the same request after Retry-After "
        "seconds. It will not be charged twice."
    ),
):
    """The processor may have charged, and the outcome is not recorded yet (a payment in doubt).

    Only the same request (same token, amount, currency and reference) can finish it: its retry
    asks the processor first, so it gets this payment and is never charged twice.
    """

    retry_after = 2
