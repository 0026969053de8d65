"""Turning a token into exactly one payment: verify, claim, open, charge once, record."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyInconsistentStateError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)

from card_tokens.aws import dynamodb_client
from card_tokens.config import (
    PaymentSettings,
    payment_settings,
)
from card_tokens.errors import (
    IdempotencyKeyReused,
    PaymentNotFound,
    ProcessorError,
    RequestInProgress,
    ServiceUnavailable,
    TokenAlreadyUsed,
)
from card_tokens.observability import count, logger
from card_tokens.processor import (
    PaymentProcessor,
    ProcessorFailure,
    ProcessorIdempotencyConflict,
    SandboxProcessor,
)
from card_tokens.records import PaymentRecord, epoch_seconds, iso_utc, payment_id_for
from card_tokens.request_body import (
    PaymentRequest,
    parse_payment_request,
)
from card_tokens.sealing import DataKeySource, KmsDataKeys, encryption_context, open_card
from card_tokens.signing_keys import (
    VerificationKey,
    find_verification_key,
)
from card_tokens.stores import (
    DynamoDBPaymentStore,
    DynamoDBTokenStore,
    PaymentStore,
    TokenAlreadyRedeemed,
    TokenStore,
)
from card_tokens.tokens import verify_token

# Longer than the function timeout: a claim left by a request that died is free again after it.
CLAIM_LEASE_SECONDS = 60
# The AWS calls one payment makes, one after another, in the worst case (cold cache):
#   GetSecretValue, idempotency PutItem, token UpdateItem, payment PutItem, KMS Decrypt,
#   TransactWriteItems, idempotency UpdateItem
AWS_CALLS_TO_PAY = 7
# A retried request with the same Idempotency-Key gets the first answer for this long.
IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600


def request_fingerprint(request: PaymentRequest) -> str:
    canonical = json.dumps(request.fingerprint_fields(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Cashier:
    """POST /payments: verify, claim, open, charge once, record, destroy the data key."""

    settings: PaymentSettings
    data_keys: DataKeySource
    tokens: TokenStore
    payments: PaymentStore
    processor: PaymentProcessor
    find_key: Callable[[str], VerificationKey | None]
    clock: Callable[[], int] = epoch_seconds
    lease_seconds: int = CLAIM_LEASE_SECONDS

    def pay(self, request: PaymentRequest) -> PaymentRecord:
        now = self.clock()
        claims = verify_token(
            request.token, find_key=self.find_key, settings=self.settings.token, now=now
        )
        jti = claims.jti
        claim_id = uuid.uuid4().hex
        try:
            record = self.tokens.claim(
                jti=jti,
                claim_id=claim_id,
                fingerprint=request_fingerprint(request),
                now=now,
                lease_seconds=self.lease_seconds,
            )
        except TokenAlreadyRedeemed as redeemed:
            # A retry of the request that paid (its answer was lost): the same answer, no charge.
            return self.payments.get(redeemed.payment_id)
        except TokenAlreadyUsed:
            count("ReplaysBlocked")
            raise
        payment = PaymentRecord(
            payment_id=payment_id_for(jti),
            status="pending",
            amount=request.amount,
            currency=request.currency,
            reference=request.reference,
            brand=record.brand,
            last4=record.last4,
            decline_code=None,
            created_at=iso_utc(now),
        )
        try:
            if record.encrypted_data_key is None:
                raise TokenAlreadyUsed()  # authorized before: its data key is gone
            self.payments.put_pending(payment)
            card = open_card(
                claims.meta_data,
                encrypted_data_key=record.encrypted_data_key,
                context=encryption_context(jti=jti, audience=self.settings.token.audience),
                data_keys=self.data_keys,
            )
            try:
                # The token's jti is the processor's idempotency key: a retry cannot charge twice.
                result = self.processor.charge(
                    card=card,
                    amount=request.amount,
                    currency=request.currency,
                    idempotency_key=jti,
                )
            finally:
                del card
        except ProcessorFailure:
            self.tokens.release(jti=jti, claim_id=claim_id)
            logger.warning("processor failed", extra={"payment_id": payment.payment_id})
            raise ProcessorError() from None
        except ProcessorIdempotencyConflict:
            self.tokens.release(jti=jti, claim_id=claim_id)
            raise TokenAlreadyUsed() from None
        except Exception:
            # Nothing was charged: give the token back so the client can retry.
            self.tokens.release(jti=jti, claim_id=claim_id)
            raise
        # After the charge the claim is kept on failure: only the same request may take it over.
        final = payment.authorized(
            approved=result.outcome == "approved", decline_code=result.decline_code
        )
        self.payments.record_authorization(final, jti=jti, claim_id=claim_id)
        count("Payments", status=final.status)
        logger.info(
            "payment authorized",
            extra={"payment_id": final.payment_id, "status": final.status},
        )
        return final

    def get(self, payment_id: str) -> PaymentRecord:
        return self.payments.get(payment_id)


@cache
def sandbox_processor() -> SandboxProcessor:
    return SandboxProcessor()


@cache
def cashier() -> Cashier:
    settings = payment_settings()
    return Cashier(
        settings=settings,
        data_keys=KmsDataKeys(settings.card_key_id),
        tokens=DynamoDBTokenStore(settings.token_table),
        payments=DynamoDBPaymentStore(settings.payment_table, settings.token_table),
        processor=sandbox_processor(),
        find_key=lambda kid: find_verification_key(settings.verification_keys_secret_id, kid),
    )


# Powertools idempotency: same key + same body → the stored first response; another body → 422.
IDEMPOTENCY_CONFIG = IdempotencyConfig(
    event_key_jmespath="idempotency_key",
    payload_validation_jmespath="request",
    expires_after_seconds=IDEMPOTENCY_WINDOW_SECONDS,
    hash_function="sha256",
    raise_on_no_idempotency_key=True,
)


@cache
def _pay_once() -> Callable[..., dict[str, Any]]:
    persistence = DynamoDBPersistenceLayer(
        table_name=payment_settings().idempotency_table, boto3_client=dynamodb_client()
    )

    @idempotent_function(
        data_keyword_argument="attempt", config=IDEMPOTENCY_CONFIG, persistence_store=persistence
    )
    def pay_once(*, attempt: dict[str, Any]) -> dict[str, Any]:
        request = parse_payment_request(attempt["request"])
        return cashier().pay(request).to_response()

    return pay_once  # type: ignore[no-any-return]


def pay(document: dict[str, Any], idempotency_key: str | None) -> dict[str, Any]:
    """One payment for one token; with an Idempotency-Key, retries get the first answer."""
    request = parse_payment_request(document)  # a 400 is never stored as an answer
    if idempotency_key is None:
        return cashier().pay(request).to_response()
    try:
        return _pay_once()(attempt={"idempotency_key": idempotency_key, "request": document})
    except IdempotencyValidationError:
        raise IdempotencyKeyReused() from None
    except IdempotencyAlreadyInProgressError:
        raise RequestInProgress() from None
    except (IdempotencyPersistenceLayerError, IdempotencyInconsistentStateError):
        raise ServiceUnavailable("dynamodb") from None


_PAYMENT_ID = re.compile(r"pay_[a-z2-7]{24}", re.ASCII)


def get_payment(payment_id: str) -> dict[str, Any]:
    if not _PAYMENT_ID.fullmatch(payment_id):
        raise PaymentNotFound()  # not an id we could have made: no table read
    return cashier().get(payment_id).to_response()
