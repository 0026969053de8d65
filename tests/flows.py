"""Building events from events/ and reading results: shared by the integration tests."""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from card_tokens.observability import logger
from local.provision import LocalStack

EVENTS = Path(__file__).resolve().parents[1] / "events"
Invoke = Callable[..., dict[str, Any]]


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/, the same file `sam local invoke` uses."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return copy.deepcopy(event)


def token_event(**card: Any) -> dict[str, Any]:
    event = load_event("issue_token.json")
    body = json.loads(event["body"])
    body.update(card)
    event["body"] = json.dumps(body)
    return event


def payment_event(token: str, idempotency_key: str | None = None, **fields: Any) -> dict[str, Any]:
    event = load_event("process_payment.json")
    body = json.loads(event["body"])
    body.update({"token": token, **fields})
    event["body"] = json.dumps(body)
    headers = {k: v for k, v in event["headers"].items() if k.lower() != "idempotency-key"}
    if idempotency_key is not None:
        headers["idempotency-key"] = idempotency_key
    event["headers"] = headers
    return event


def get_event(payment_id: str) -> dict[str, Any]:
    event = load_event("get_payment.json")
    old_id = event["pathParameters"]["payment_id"]
    event["pathParameters"]["payment_id"] = payment_id
    event["rawPath"] = event["rawPath"].replace(old_id, payment_id)
    event["requestContext"]["http"]["path"] = event["rawPath"]
    return event


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


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
