"""POST /payments, GET /payments/{payment_id}."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from card_tokens.api import create_app, json_response
from card_tokens.observability import lambda_entry
from card_tokens.request_body import (
    caller_of,
    idempotency_key,
    parse_payment_request,
    read_json_object,
)
from card_tokens.snapstart import register_hooks
from card_tokens.wiring import cashier

cashier()  # a missing or unknown setting fails the cold start, not the first customer
register_hooks()  # SnapStart: what a restored environment resets (card_tokens/snapstart.py)
app = create_app()


@app.post("/payments")
def create_payment() -> Response[str]:
    event = app.current_event.raw_event
    key = idempotency_key(event)
    request = parse_payment_request(read_json_object(event))  # the body, parsed once, here
    context = app.lambda_context
    payment = cashier().pay(
        request,
        caller=caller_of(event),
        idempotency_key=key,
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    return json_response(201, payment.to_response())


@app.get("/payments/<payment_id>")
def read_payment(payment_id: str) -> Response[str]:
    payment = cashier().get(payment_id, caller=caller_of(app.current_event.raw_event))
    return json_response(200, payment.to_response())


# The request carries a token: never logged, never traced (card_tokens.observability).
@lambda_entry(correlation_path=correlation_paths.API_GATEWAY_REST, cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
