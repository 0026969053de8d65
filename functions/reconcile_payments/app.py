"""Scheduled: settle payments left in doubt, strip data keys from expired tokens."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from card_tokens import wiring
from card_tokens.observability import lambda_entry
from card_tokens.snapstart import register_hooks

reconciler = wiring.reconciler()  # a missing or unknown setting fails the cold start
register_hooks()  # SnapStart: what a restored environment resets (card_tokens/snapstart.py)


class SweepIncomplete(RuntimeError):
    """Some tokens could not be settled: fail the invocation so its alarm fires."""


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    outcomes = reconciler.run(lambda: context.get_remaining_time_in_millis() / 1000)
    if outcomes["failed"]:
        raise SweepIncomplete(f"{outcomes['failed']} tokens left for the next sweep")
    return dict(outcomes)
