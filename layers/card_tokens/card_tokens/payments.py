"""Turning a token into exactly one payment: verify, claim, open, charge once, record.

The payment state machine (docs/reliability.md): a token is `issued`, then `claimed` by one
attempt of one request, then `used` once its payment is recorded. From the claim on, the
processor may have been called, so only the same request (same fingerprint) may finish the
payment, and whoever finds another attempt's claim asks the processor before charging.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from card_tokens.aws import ensure_time, no_deadline
from card_tokens.config import PaymentSettings
from card_tokens.errors import (
    CardTokensError,
    IdempotencyKeyReused,
    InvalidToken,
    PaymentInProgress,
    PaymentNotFound,
    ProcessorError,
    ServiceUnavailable,
    TokenAlreadyUsed,
)
from card_tokens.merchants import Caller, MerchantDirectory, merchant_matches
from card_tokens.observability import count, logger
from card_tokens.processor import (
    ChargeResult,
    PaymentProcessor,
    ProcessorFailure,
    ProcessorIdempotencyConflict,
    ProcessorOutcomeUnknown,
)
from card_tokens.records import PaymentRecord, epoch_seconds
from card_tokens.request_body import PaymentRequest
from card_tokens.sealing import DataKeySource, encryption_context, open_card
from card_tokens.signing_keys import VerificationKey
from card_tokens.stores import (
    Answered,
    Claim,
    ClaimLapsed,
    IdempotencyKeyConflict,
    PaymentIntent,
    PaymentStates,
    idempotency_key_id,
)
from card_tokens.tokens import verify_token

# Recording a charge (finish), or giving the token back after a refusal (release).
_CALLS_AFTER_CHARGE = 2
# Longer than the function timeout: a claim's holder is surely gone once its lease has lapsed.
CLAIM_LEASE_SECONDS = 60
# The AWS calls of one payment, one after another, in the worst case (cold cache, with a key):
#   GetSecretValue, claim TransactWriteItems, claim GetItem, KMS Decrypt, the sandbox ledger's
#   PutItem (the processor), finish TransactWriteItems, and a release or a read-back.
# The merchant registry's reads (cold cache only) come before the claim, which waits until
# the time left covers all of the above but the secret (already read): see Cashier.pay.
# The rarer paths (settling another request's lapsed claim, asking the processor about an
# inherited one) add calls only while the time left still covers the worst case of the rest.
AWS_CALLS_TO_PAY = 7
_PAYMENT_ID = re.compile(r"pay_[a-z2-7]{24}", re.ASCII)


@dataclass(frozen=True)
class Cashier:
    """POST /payments: verify, claim, open, charge once, record, destroy the data key."""

    settings: PaymentSettings
    data_keys: DataKeySource
    states: PaymentStates
    processor: PaymentProcessor
    find_key: Callable[[str], VerificationKey | None]
    merchants: MerchantDirectory
    clock: Callable[[], int] = epoch_seconds
    lease_seconds: int = CLAIM_LEASE_SECONDS

    def pay(
        self,
        request: PaymentRequest,
        *,
        caller: Caller,
        idempotency_key: str | None = None,
        time_left: Callable[[], float] = no_deadline,
    ) -> PaymentRecord:
        now = self.clock()
        claims = verify_token(
            request.token, find_key=self.find_key, settings=self.settings.token, now=now
        )
        # Before the claim: another merchant's token is refused like a forged one, and unburnt.
        if not merchant_matches(self.merchants, caller, claims.merchant_id):
            raise InvalidToken("wrong_merchant")
        ensure_time(time_left, AWS_CALLS_TO_PAY - 1, ServiceUnavailable("time"))
        intent = PaymentIntent(
            jti=claims.jti,
            amount=request.amount,
            currency=request.currency,
            reference=request.reference,
            key_id=(
                idempotency_key_id(idempotency_key, claims.merchant_id) if idempotency_key else None
            ),
        )
        try:
            claim = self._claim(intent, now, time_left)
        except Answered as answered:
            return answered.payment
        if claim.inherited:
            # An earlier attempt of this request may have charged: ask before charging again.
            ensure_time(time_left, AWS_CALLS_TO_PAY - 2, PaymentInProgress())
            found = self._find_charge(intent.jti, PaymentInProgress())
            if found is not None:
                return self._record(claim, found, now)
        return self._charge(claim, claims.meta_data, now, time_left)

    def get(self, payment_id: str, *, caller: Caller) -> PaymentRecord:
        if not _PAYMENT_ID.fullmatch(payment_id):
            raise PaymentNotFound()  # not an id we could have made: no table read
        payment = self.states.get(payment_id)
        if not merchant_matches(self.merchants, caller, payment.merchant_id):
            raise PaymentNotFound()  # another merchant's: as if it did not exist
        return payment

    def _claim(self, intent: PaymentIntent, now: int, time_left: Callable[[], float]) -> Claim:
        attempt_id = uuid.uuid4().hex
        try:
            try:
                return self.states.begin(
                    intent, attempt_id=attempt_id, now=now, lease=self.lease_seconds
                )
            except ClaimLapsed as lapsed:
                # Another request's holder died. Its charge, if any, wins; else the token is free.
                ensure_time(time_left, AWS_CALLS_TO_PAY, ServiceUnavailable("time"))
                self._settle(lapsed.claim, now, unknown=ServiceUnavailable("processor"))
                return self.states.take_over(
                    intent,
                    attempt_id=attempt_id,
                    lapsed=lapsed.claim,
                    now=now,
                    lease=self.lease_seconds,
                )
        except IdempotencyKeyConflict:
            raise IdempotencyKeyReused() from None
        except ClaimLapsed:
            raise ServiceUnavailable("dynamodb") from None  # changed under us: retry afresh
        except TokenAlreadyUsed:
            count("ReplaysBlocked")
            raise

    def _settle(self, lapsed: Claim, now: int, *, unknown: CardTokensError) -> None:
        """Record a lapsed claim's charge if the processor has one (then the token is spent)."""
        found = self._find_charge(lapsed.intent.jti, unknown)
        if found is not None:
            self._record(lapsed, found, now)
            raise TokenAlreadyUsed()

    def _find_charge(self, jti: str, unknown: CardTokensError) -> ChargeResult | None:
        try:
            return self.processor.find_charge(jti)
        except ProcessorOutcomeUnknown:
            raise unknown from None

    def _charge(
        self, claim: Claim, meta_data: str, now: int, time_left: Callable[[], float]
    ) -> PaymentRecord:
        intent = claim.intent
        if claim.encrypted_data_key is None:
            raise TokenAlreadyUsed()
        try:
            card = open_card(
                meta_data,
                encrypted_data_key=claim.encrypted_data_key,
                context=encryption_context(jti=intent.jti, audience=self.settings.token.audience),
                data_keys=self.data_keys,
            )
            # A charge is started only with time for its worst case and for recording it
            # (finish, or a release): a processor call cut off by the timeout is a doubt.
            ensure_time(
                time_left,
                _CALLS_AFTER_CHARGE,
                ServiceUnavailable("time"),
                plus_seconds=self.processor.worst_case_seconds(),
            )
        except CardTokensError:
            self._give_back(claim)
            raise
        try:
            # The token's jti is the processor's idempotency key: no attempt can charge twice.
            result = self.processor.charge(
                card=card,
                amount=intent.amount,
                currency=intent.currency,
                idempotency_key=intent.jti,
                payment_id=claim.payment_id,
            )
        except CardTokensError:
            # Raised before anything was sent (its credentials unreadable): nothing charged.
            self._give_back(claim)
            raise
        except ProcessorFailure:
            # The processor says nothing was charged under this key.
            self.states.release(claim.intent, claim.attempt_id, sole_attempt=True)
            logger.warning("processor failed", extra={"payment_id": claim.payment_id})
            raise ProcessorError() from None
        except ProcessorIdempotencyConflict:
            # The processor holds another request's charge for this token: it is spent.
            logger.error("processor holds another charge", extra={"payment_id": claim.payment_id})
            raise TokenAlreadyUsed() from None
        except ProcessorOutcomeUnknown:
            count("PaymentsInDoubt")
            raise PaymentInProgress() from None
        finally:
            del card
        return self._record(claim, result, now)

    def _give_back(self, claim: Claim) -> None:
        """Nothing reached the processor in this attempt: leave no state a client can see."""
        if not claim.inherited:  # else an earlier attempt may have charged: it stays in doubt
            self.states.release(claim.intent, claim.attempt_id, sole_attempt=True)

    def _record(self, claim: Claim, result: ChargeResult, now: int) -> PaymentRecord:
        try:
            payment = self.states.finish(claim, result, now=now)
        except ServiceUnavailable:
            # Charged, not recorded: the retry or the reconciler finds the charge and records it.
            count("PaymentsInDoubt")
            raise PaymentInProgress() from None
        count("Payments", status=payment.status)
        logger.info(
            "payment authorized", extra={"payment_id": payment.payment_id, "status": payment.status}
        )
        return payment
