"""GET /.well-known/jwks.json: the public verification keys, for anyone who verifies tokens."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from card_tokens.api import create_app, json_response
from card_tokens.config import jwks_settings
from card_tokens.observability import lambda_entry
from card_tokens.snapstart import register_hooks
from card_tokens.wiring import published_jwks

# A function of its own: the public route runs with no KMS grant and no private key.
jwks_settings()  # a missing variable fails the cold start, not the first verifier
register_hooks()  # SnapStart: what a restored environment resets (card_tokens/snapstart.py)
app = create_app()
JWKS_MAX_AGE_SECONDS = 300


@app.get("/.well-known/jwks.json")
def jwks() -> Response[str]:
    return json_response(
        200, published_jwks(), {"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"}
    )


# POWERTOOLS_LOGGER_LOG_EVENT=true must not log the event whole (card_tokens.observability).
@lambda_entry(correlation_path=correlation_paths.API_GATEWAY_REST, cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
