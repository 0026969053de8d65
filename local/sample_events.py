"""The sample events in events/, read once and adapted per request (tests, bench, tools)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from local.cfn import TEMPLATE_PATH

EVENTS_DIR = TEMPLATE_PATH.parent / "events"


@cache
def _text(name: str) -> str:
    return (EVENTS_DIR / name).read_text(encoding="utf-8")


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of events/<name>, the same file `sam local invoke -e` takes."""
    event: dict[str, Any] = json.loads(_text(name))
    return event


def set_header(event: dict[str, Any], name: str, value: str | None) -> dict[str, Any]:
    """Replace a header in a payload-1.0 event, whatever its casing (None removes it).

    Payload 1.0 carries each header twice (its last value, and all of its values), with the
    name as the client cased it: both copies change together.
    """
    for key in ("headers", "multiValueHeaders"):
        event[key] = {k: v for k, v in (event.get(key) or {}).items() if k.lower() != name.lower()}
    if value is not None:
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    return event


def token_event(**card: Any) -> dict[str, Any]:
    """POST /tokens with the sample card, fields overridden."""
    event = load_event("issue_token.json")
    event["body"] = json.dumps({**json.loads(event["body"]), **card})
    return event


def payment_event(token: str, idempotency_key: str | None = None, **fields: Any) -> dict[str, Any]:
    """POST /payments for `token`, with or without an Idempotency-Key, fields overridden."""
    event = load_event("process_payment.json")
    event["body"] = json.dumps({**json.loads(event["body"]), "token": token, **fields})
    return set_header(event, "Idempotency-Key", idempotency_key)


def get_event(payment_id: str) -> dict[str, Any]:
    """GET /payments/{payment_id} for another id."""
    event = load_event("get_payment.json")
    old_id = event["pathParameters"]["payment_id"]
    event["pathParameters"]["payment_id"] = payment_id
    event["path"] = event["path"].replace(old_id, payment_id)
    event["requestContext"]["path"] = event["path"]
    return event
