"""POST /tokens: card data in, a signed single-use card token out (and its CORS preflight)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from card_tokens.api import create_app, json_response
from card_tokens.config import issuer_settings
from card_tokens.cors import add_cors_headers, preflight_headers
from card_tokens.observability import lambda_entry
from card_tokens.request_body import read_json_object, token_caller_of
from card_tokens.snapstart import register_hooks
from card_tokens.wiring import issuer

settings = issuer_settings()  # a missing variable fails the cold start, not the first customer
issuer()
register_hooks()  # SnapStart: what a restored environment resets (card_tokens/snapstart.py)
app = create_app()


@app.post("/tokens")
def create_token() -> Response[str]:
    event = app.current_event.raw_event
    return json_response(201, issuer().issue(read_json_object(event), token_caller_of(event)))


@app.route("/tokens", method="OPTIONS")
def preflight() -> Response[str]:
    # A REST API's own CORS names one origin; CorsOrigins may list several (card_tokens.cors).
    headers = {
        "Cache-Control": "no-store",
        **preflight_headers(app.current_event.raw_event, settings.cors_origins),
    }
    return Response(status_code=204, headers=headers, body="")


# The event carries card data: never logged, never traced (card_tokens.observability).
@lambda_entry(correlation_path=correlation_paths.API_GATEWAY_REST, cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return add_cors_headers(app.resolve(event, context), event, settings.cors_origins)
