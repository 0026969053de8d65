"""Invoking the handlers with the events/ files and reading results: shared by the tests."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest

from card_tokens.observability import logger
from local.provision import LocalStack
from local.sample_events import get_event, load_event, payment_event, set_header, token_event

Invoke = Callable[..., dict[str, Any]]
# Re-exported: the tests build their events from events/ through these.
__all__ = ["Invoke", "get_event", "load_event", "payment_event", "set_header", "token_event"]


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def response_header(response: dict[str, Any], name: str) -> str | None:
    """A header of a handler's payload-1.0 answer (Powertools writes multiValueHeaders)."""
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return ",".join(str(value) for value in values)
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def assert_503(response: dict[str, Any], code: str = "service_unavailable") -> None:
    """A dependency is down: 503 with `code` and a Retry-After, and nothing of the failure shown."""
    assert response["statusCode"] == 503, response["body"]
    assert body(response)["error"]["code"] == code
    assert int(response_header(response, "Retry-After") or 0) > 0
    assert "Traceback" not in response["body"]


def new_token(issue: Invoke, **card: Any) -> str:
    response = issue(token_event(**card))
    assert response["statusCode"] == 201, response["body"]
    token: str = body(response)["token"]
    return token


def dynamodb_item(stack: LocalStack, variable: str, key: dict[str, Any]) -> dict[str, Any] | None:
    client = boto3.client("dynamodb")
    item: dict[str, Any] | None = client.get_item(
        TableName=stack.environment[variable], Key=key, ConsistentRead=True
    ).get("Item")
    return item


@contextmanager
def everything_written(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Iterator[list[str]]:
    """Everything the service writes: Powertools' JSON logs, EMF metrics, any other logger."""
    stream = io.StringIO()
    handler = logger.registered_handler
    previous_stream = handler.setStream(stream)  # type: ignore[attr-defined]
    previous_level = logger.log_level
    logger.setLevel("DEBUG")
    caplog.set_level(logging.INFO)
    outputs: list[str] = []
    try:
        yield outputs
    finally:
        handler.setStream(previous_stream)  # type: ignore[attr-defined]
        logger.setLevel(previous_level)
        out, err = capsys.readouterr()
        outputs.extend([stream.getvalue(), out, err, caplog.text])
