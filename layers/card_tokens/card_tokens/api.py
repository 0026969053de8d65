"""HTTP mapping shared by the handlers: JSON responses, and domain errors → status codes."""

from __future__ import annotations

import json
import traceback
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from card_tokens.errors import (
    CardTokensError,
    InvalidToken,
    PaymentInProgress,
    ServiceUnavailable,
)
from card_tokens.observability import count, logger

JSON = "application/json"
# Tokens and payments are never to be cached by a browser or a proxy.
NO_STORE = {"Cache-Control": "no-store"}
# A 503 for any AWS dependency; template.yaml's DependencyUnavailableAlarm watches this metric.
DEPENDENCY_UNAVAILABLE_METRIC = "DependencyUnavailable"


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers={**NO_STORE, **(headers or {})},
    )


def error_response(error: CardTokensError) -> Response[str]:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.field is not None:
        body["field"] = error.field
    headers = {}
    if isinstance(error, ServiceUnavailable | PaymentInProgress):
        headers["Retry-After"] = str(error.retry_after)
    return json_response(error.status, {"error": body}, headers)


def create_app() -> APIGatewayRestResolver:
    """A resolver (REST API, payload 1.0) whose errors all take the documented shape, and never
    carry input."""
    # debug=False: POWERTOOLS_DEV=true would otherwise print every raw event (card data, tokens).
    app = APIGatewayRestResolver(debug=False)

    @app.exception_handler(CardTokensError)
    def handle_domain_error(error: CardTokensError) -> Response[str]:
        if isinstance(error, InvalidToken):
            # One answer for every rejection; the precise reason goes to logs and metrics only.
            logger.info("token rejected", extra={"reason": error.reason})
            count("TokenRejected", reason=error.reason)
        elif isinstance(error, ServiceUnavailable):
            logger.warning("dependency unavailable", extra={"dependency": error.dependency})
            count(DEPENDENCY_UNAVAILABLE_METRIC)
        else:
            logger.info("request refused", extra={"code": error.code})
        return error_response(error)

    @app.exception_handler(Exception)
    def handle_unexpected(error: Exception) -> Response[str]:
        # Frames only: an exception's message could quote input, so it is never logged.
        logger.error(
            "unhandled error",
            extra={
                "error_type": type(error).__name__,
                "stack": traceback.format_tb(error.__traceback__),
            },
        )
        return error_response(CardTokensError())

    @app.not_found
    def handle_not_found(_: Exception) -> Response[str]:
        # API Gateway answers unknown routes itself, in this shape (template.yaml's
        # GatewayResponses); locally too.
        return Response(status_code=404, content_type=JSON, body='{"message":"Not Found"}')

    return app
