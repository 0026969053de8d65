"""The reconciler: settles payments left in doubt and strips data keys from expired tokens.

A payment is in doubt when its request died (or lost its answers) after claiming the token:
the processor may have charged. Once the claim's lease has lapsed, its holder is surely gone,
so the processor's answer to "is there a charge for this token?" is final: a charge is
recorded as the payment (and the data key destroyed), no charge gives the token back, once
the processor's lookup lag (lookup_lag_seconds) has passed too.

Tokens that expire unpaid lose their encrypted data key here, so no card data (CVV included)
outlives its token by more than the sweep interval; DynamoDB's TTL can take days.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from card_tokens.aws import no_deadline, worst_case_call_seconds
from card_tokens.errors import CardTokensError
from card_tokens.observability import count, logger
from card_tokens.processor import PaymentProcessor, ProcessorOutcomeUnknown
from card_tokens.records import epoch_seconds
from card_tokens.stores import PaymentStates

# One token takes at most this many AWS calls (read, lookup, record or release, strip): stop
# taking new tokens when the time left would not cover their worst case.
_CALLS_PER_TOKEN = 4


@dataclass(frozen=True)
class Reconciler:
    states: PaymentStates
    processor: PaymentProcessor
    clock: Callable[[], int] = epoch_seconds

    def run(self, time_left: Callable[[], float] = no_deadline) -> Counter[str]:
        """One sweep: how many tokens ended in each outcome (recorded, released, stripped, ...)."""
        now = self.clock()
        outcomes: Counter[str] = Counter()
        for jti in self.states.due_for_sweep(now):
            if time_left() < _CALLS_PER_TOKEN * worst_case_call_seconds():
                outcomes["deferred"] += 1
                break
            try:
                outcome = self._sweep(jti, now)
            except (CardTokensError, ProcessorOutcomeUnknown):
                outcome = "failed"  # left as it was: the next sweep tries again
            outcomes[outcome] += 1
            count("TokensSwept", outcome=outcome)
        logger.info("reconciliation done", extra={"outcomes": dict(outcomes)})
        return outcomes

    def _sweep(self, jti: str, now: int) -> str:
        claim = self.states.claim_of(jti)
        if claim is None:
            return "stripped" if self.states.strip_data_key(jti, now=now) else "unchanged"
        if claim.lease_ends_at >= now:
            return "live"  # its request may still be running: not ours to decide
        found = self.processor.find_charge(jti)
        if found is not None:
            payment = self.states.finish(claim, found, now=now)
            count("Payments", status=payment.status)
            logger.info("in-doubt payment recorded", extra={"payment_id": payment.payment_id})
            return "recorded"
        if now <= claim.lease_ends_at + self.processor.lookup_lag_seconds:
            # The last attempt may have charged up to its lease's end, and this processor's
            # lookup may not show a charge that young yet (Stripe's search): ask again later.
            # The card is not needed to record a charge found then: an expired token's goes.
            if claim.encrypted_data_key is not None and claim.expires_at < now:
                self.states.strip_claimed_data_key(jti, now=now)
            return "unconfirmed"
        # Its lease lapsed, so every attempt that held it is gone: the processor's no is final.
        self.states.release(claim.intent, claim.attempt_id, sole_attempt=False)
        if claim.expires_at < now and self.states.strip_data_key(jti, now=now):
            return "released_and_stripped"
        return "released"
