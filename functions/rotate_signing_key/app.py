"""Secrets Manager rotation handler for the token signing key."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from card_tokens.aws import secretsmanager_client
from card_tokens.config import rotation_settings
from card_tokens.key_rotation import SigningKeyRotation
from card_tokens.observability import logger, tracer
from card_tokens.snapstart import register_hooks

settings = rotation_settings()  # a missing variable fails the cold start
register_hooks()  # SnapStart: what a restored environment resets (card_tokens/snapstart.py)


# log_event=False: POWERTOOLS_LOGGER_LOG_EVENT=true must not log the event whole.
@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    rotation = SigningKeyRotation(secretsmanager_client(), settings)
    rotation.run(event["Step"], event["SecretId"], event["ClientRequestToken"])
