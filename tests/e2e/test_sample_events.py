"""The files in events/ replayed over HTTP against the local stack, so they cannot rot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack_process import RunningLocalStack
from tests.support import REPO_ROOT

EVENTS = REPO_ROOT / "events"
# The client (or API Gateway) sets these; replaying them verbatim would lie about the request.
_HOP_HEADERS = {
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-amzn-trace-id",
}


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event


def replay(stack: RunningLocalStack, event: dict[str, Any], body: str | None = None) -> Any:
    headers = {k: v for k, v in event["headers"].items() if k.lower() not in _HOP_HEADERS}
    body = body if body is not None else event.get("body")
    return stack.api.request(
        event["httpMethod"],
        event["path"],
        None if body is None else body.encode(),
        headers,
    )


def test_issue_token_event_issues_a_token(local_stack: RunningLocalStack) -> None:
    reply = replay(local_stack, load_event("issue_token.json"))

    assert reply.status == 201
    local_stack.issued_tokens.append(reply.json()["token"])


def test_process_payment_event_pays_once_its_token_is_fresh(local_stack: RunningLocalStack) -> None:
    # Given the sample payment with a token from this stack (the file's token is from another)
    event = load_event("process_payment.json")
    body = json.loads(event["body"])
    body["token"] = local_stack.issue_token()

    # When
    reply = replay(local_stack, event, json.dumps(body))

    # Then
    assert reply.status == 201
    assert reply.json()["reference"] == "order-1234"


def test_get_payment_event_reaches_the_payment_route(local_stack: RunningLocalStack) -> None:
    # The file names a payment of the stack that generated it, unknown to this one.
    reply = replay(local_stack, load_event("get_payment.json"))

    assert reply.status == 404
    assert reply.error_code == "payment_not_found"


def test_jwks_event_returns_the_public_keys(local_stack: RunningLocalStack) -> None:
    reply = replay(local_stack, load_event("jwks.json"))

    assert reply.status == 200
    assert reply.json()["keys"]


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda path: path.name)
def test_every_events_file_is_valid_json(path: Path) -> None:
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
