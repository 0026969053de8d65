"""POST /payments, GET /payments/{payment_id}."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from card_tokens.api import create_app, json_response
from card_tokens.config import payment_settings
from card_tokens.observability import logger, metrics, tracer
from card_tokens.payments import get_payment, pay
from card_tokens.request_body import idempotency_key, read_json_object
from card_tokens.snapstart import register_hooks

payment_settings()  # a missing variable fails the cold start, not the first customer
register_hooks()  # SnapStart: what a restored environment resets (card_tokens/snapstart.py)
app = create_app()


@app.post("/payments")
def create_payment() -> Response[str]:
    event = app.current_event.raw_event
    key = idempotency_key(event)
    context = app.lambda_context
    payment = pay(
        read_json_object(event), key, lambda: context.get_remaining_time_in_millis() / 1000
    )
    return json_response(201, payment)


@app.get("/payments/<payment_id>")
def read_payment(payment_id: str) -> Response[str]:
    return json_response(200, get_payment(payment_id))


# The request carries a token: never log the event, never trace the response.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False
)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
