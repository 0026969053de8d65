"""Secrets Manager rotation handler for the token signing key."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from card_tokens.config import rotation_settings
from card_tokens.observability import lambda_entry
from card_tokens.snapstart import register_hooks
from card_tokens.wiring import signing_key_rotation

rotation_settings()  # a missing variable fails the cold start
register_hooks()  # SnapStart: what a restored environment resets (card_tokens/snapstart.py)


# POWERTOOLS_LOGGER_LOG_EVENT=true must not log the event whole (card_tokens.observability).
@lambda_entry()
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    signing_key_rotation().run(event["Step"], event["SecretId"], event["ClientRequestToken"])
