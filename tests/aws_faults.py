"""Faults on the layer's AWS calls in-process, where they happen: before the call, or after it.

moto (mock_aws) answers botocore's `before-send` event, so a handler placed first on that event
sits exactly where the network is. Three faults:
- `before`: the request never reaches AWS (a refused or dropped connection);
- `lost`: AWS applies the request, then the answer is lost (a read timeout). botocore's own
  retry loop then resends the same request, as it does over a real network;
- `hollow`: AWS applies the request and answers 200 with an empty JSON body, as an answer cut
  short can parse.
Faults are planned per operation and consumed in order ("pass" lets one call through); every
fault is recorded. The real-socket
version of the same faults is local.fault_proxy, used by tests/e2e/test_chaos.py.

`failing` is the other kind: an error where botocore's retries are already spent, raised by a
`before-call` hook (which botocore does not retry).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber

Fault = Literal["pass", "before", "lost", "hollow"]


@dataclass
class AwsFaults:
    """Planned faults for the operations of some botocore clients (e.g. the layer's)."""

    planned: dict[str, deque[Fault]] = field(default_factory=dict)
    fired: list[tuple[str, Fault]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(self, operation: str, *faults: Fault) -> None:
        """The next calls of `operation` (botocore's name, e.g. "TransactWriteItems") get these."""
        with self._lock:
            self.planned.setdefault(operation, deque()).extend(faults)

    def clear(self) -> None:
        with self._lock:
            self.planned.clear()

    def attach(self, client: Any) -> None:
        client.meta.events.register_first("before-send", self._before_send, unique_id="faults")

    def detach(self, client: Any) -> None:
        client.meta.events.unregister("before-send", unique_id="faults")

    def _before_send(self, request: Any, event_name: str, **kwargs: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.calls.append(operation)
            queue = self.planned.get(operation)
            fault = queue.popleft() if queue else None
            if fault is not None and fault != "pass":
                self.fired.append((operation, fault))
        if fault is None or fault == "pass":
            return None
        if fault == "before":
            raise ConnectionClosedError(endpoint_url=request.url)
        answered = botocore_stubber(event_name=event_name, request=request, **kwargs)
        if answered is None:
            raise RuntimeError("moto is not active: a fault after the call needs mock_aws")
        if fault == "lost":
            raise ReadTimeoutError(endpoint_url=request.url)
        return AWSResponse(
            request.url,
            200,
            {"Content-Type": "application/x-amz-json-1.0", "Content-Length": "2"},
            MockRawResponse(b"{}"),
        )


@contextmanager
def faults_on(*clients: Any) -> Iterator[AwsFaults]:
    """Faults on these clients for the block; no retry backoff sleeps meanwhile."""
    from botocore.retries.standard import ExponentialBackoff

    faults = AwsFaults()
    original = ExponentialBackoff.delay_amount
    ExponentialBackoff.delay_amount = lambda self, context: 0  # type: ignore[method-assign]
    for client in clients:
        faults.attach(client)
    try:
        yield faults
    finally:
        for client in clients:
            faults.detach(client)
        ExponentialBackoff.delay_amount = original  # type: ignore[method-assign]


def client_error(code: str, status: int = 400) -> ClientError:
    """The error AWS answers `code` with, as botocore raises it."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Injected",
    )


@contextmanager
def failing(client: Any, operation: str, error: Exception) -> Iterator[list[int]]:
    """Every call of one operation on this client fails before it is sent, as it would after all
    retries; yields one entry per call that failed."""
    service = client.meta.service_model.service_id.hyphenize()
    event = f"before-call.{service}.{operation}"
    hits: list[int] = []

    def fail(**_: Any) -> None:
        hits.append(1)
        raise error

    client.meta.events.register(event, fail)
    try:
        yield hits
    finally:
        client.meta.events.unregister(event, fail)
