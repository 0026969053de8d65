"""Scheduled: settle payments left in doubt, strip data keys from expired tokens."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from card_tokens.config import reconciler_settings
from card_tokens.observability import logger, metrics, tracer
from card_tokens.processor import SandboxProcessor
from card_tokens.reconciliation import Reconciler
from card_tokens.snapstart import register_hooks
from card_tokens.stores import DynamoDBPaymentStates

settings = reconciler_settings()  # a missing variable fails the cold start
register_hooks()  # SnapStart: what a restored environment resets (card_tokens/snapstart.py)
reconciler = Reconciler(
    states=DynamoDBPaymentStates(
        token_table=settings.token_table,
        payment_table=settings.payment_table,
        idempotency_table=settings.idempotency_table,
    ),
    processor=SandboxProcessor(settings.sandbox_ledger_table),
)


class SweepIncomplete(RuntimeError):
    """Some tokens could not be settled: fail the invocation so its alarm fires."""


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    outcomes = reconciler.run(lambda: context.get_remaining_time_in_millis() / 1000)
    if outcomes["failed"]:
        raise SweepIncomplete(f"{outcomes['failed']} tokens left for the next sweep")
    return dict(outcomes)
