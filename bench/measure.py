"""Timing summaries and AWS request counting with botocore event hooks."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """Milliseconds: median and p99 (the nearest sample at or above the 99th percentile)."""

    n: int
    median_ms: float
    p99_ms: float
    min_ms: float

    @classmethod
    def of(cls, seconds: Iterable[float]) -> Summary:
        values = sorted(s * 1000 for s in seconds)
        if not values:
            raise ValueError("no samples")
        rank = max(0, -(-99 * len(values) // 100) - 1)  # ceil(0.99 n) - 1, nearest rank
        return cls(len(values), statistics.median(values), values[rank], values[0])

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def ratio(numerator: Summary, denominator: Summary) -> dict[str, float]:
    return {
        "median": numerator.median_ms / denominator.median_ms,
        "p99": numerator.p99_ms / denominator.p99_ms,
    }


PROCESSOR = "processor:"  # the prefix of a call the payment processor makes (see below)


class RequestCounter:
    """Counts AWS API calls ("service:Operation") with botocore 'before-parameter-build' hooks.

    The hook fires once per API call, before retries (moto never throttles, so attempts equal
    calls here). A call on one of `processor_tables` (the sandbox processor's ledger, which
    stands in for the processor's network call) is counted as "processor:service:Operation",
    apart from the service's own calls. Two independent tallies:
    - `hooked`: the emitters attached explicitly: the layer's clients (built once by
      card_tokens.aws), boto3's default session, the floor's and the tutorial's clients;
    - `everywhere`: every botocore session created after `install_everywhere()` (the handler is
      added to botocore's built-in handlers, as moto does), so a client the explicit hooks miss
      still shows up as a difference between the two.
    Inside `recording()`, the hooked tally also keeps the shape of every DynamoDB request (see
    `request_shape`), so that two sides' requests can be compared expression by expression.
    """

    def __init__(self) -> None:
        self.hooked: Counter[str] = Counter()
        self.everywhere: Counter[str] = Counter()
        self.processor_tables: set[str] = set()
        self.table_roles: dict[str, str] = {}  # table name → what it is, for request shapes
        self._attached: set[int] = set()
        self._recorded: list[dict[str, Any]] | None = None

    def attach(self, emitter: Any) -> None:
        if id(emitter) in self._attached:
            return
        emitter.register(
            "before-parameter-build", self._count_hooked, unique_id=f"bench-hooked-{id(self)}"
        )
        self._attached.add(id(emitter))

    def install_everywhere(self) -> None:
        """Count in every session created from now on (call before the clients exist)."""
        from botocore.handlers import BUILTIN_HANDLERS

        BUILTIN_HANDLERS.append(("before-parameter-build", self._count_everywhere))

    def _count_hooked(self, model: Any, params: Any, **_: Any) -> None:
        self.hooked[self._name(model, params)] += 1
        if self._recorded is not None and model.service_model.service_name == "dynamodb":
            self._recorded.append(request_shape(model.name, params, self.table_roles))

    def _count_everywhere(self, model: Any, params: Any, **_: Any) -> None:
        self.everywhere[self._name(model, params)] += 1

    def _name(self, model: Any, params: Any) -> str:
        name = f"{model.service_model.service_name}:{model.name}"
        if isinstance(params, dict) and params.get("TableName") in self.processor_tables:
            return PROCESSOR + name
        return name

    @contextmanager
    def window(self) -> Iterator[Window]:
        """The calls made inside the with-block."""
        hooked, everywhere = Counter(self.hooked), Counter(self.everywhere)
        result = Window(Counter(), Counter())
        try:
            yield result
        finally:
            result.hooked.update(self.hooked - hooked)
            result.everywhere.update(self.everywhere - everywhere)

    @contextmanager
    def recording(self) -> Iterator[list[dict[str, Any]]]:
        """The shapes of the DynamoDB requests made inside the with-block, in order."""
        recorded: list[dict[str, Any]] = []
        self._recorded = recorded
        try:
            yield recorded
        finally:
            self._recorded = None


@dataclass(frozen=True)
class Window:
    hooked: Counter[str]
    everywhere: Counter[str]


def split_processor(calls: Counter[str]) -> tuple[Counter[str], Counter[str]]:
    """(the service's own calls, the processor's calls without their prefix)."""
    service: Counter[str] = Counter()
    processor: Counter[str] = Counter()
    for name, count in calls.items():
        if name.startswith(PROCESSOR):
            processor[name.removeprefix(PROCESSOR)] += count
        else:
            service[name] = count
    return service, processor


_SHAPE_FIELDS = (
    "UpdateExpression",
    "ConditionExpression",
    "KeyConditionExpression",
    "ProjectionExpression",
    "ExpressionAttributeNames",
    "ReturnValues",
    "ReturnValuesOnConditionCheckFailure",
    "ConsistentRead",
    "ReturnConsumedCapacity",
    "IndexName",
)


def request_shape(
    operation: str, params: dict[str, Any], table_roles: dict[str, str]
) -> dict[str, Any]:
    """What a DynamoDB request asks, without the values that differ from call to call.

    Operation, table (by role), expressions, attribute names and ReturnValues settings, and the
    names and types of the item's attributes, of the key and of the expression values; for a
    transaction, the same for each of its items. Two implementations of one step agree on it.
    """
    shape: dict[str, Any] = {"operation": operation}
    if "TableName" in params:
        shape["table"] = table_roles.get(params["TableName"], "another table")
    for field in _SHAPE_FIELDS:
        if field in params:
            shape[field] = params[field]
    for field in ("Item", "Key", "ExpressionAttributeValues"):
        if field in params:
            shape[field] = {name: sorted(value) for name, value in sorted(params[field].items())}
    if "ClientRequestToken" in params:
        shape["ClientRequestToken"] = "present"
    if "TransactItems" in params:
        shape["TransactItems"] = [
            {kind: request_shape(kind, request, table_roles) for kind, request in item.items()}
            for item in params["TransactItems"]
        ]
    return shape


class AwsClock:
    """Time spent inside botocore API calls (serialise, sign, send: moto's emulation included).

    Installed by wrapping `BaseClient._make_api_call` in this process only, so the time of a
    request splits into the AWS calls and everything else (parsing, checks, crypto, framework).
    """

    def __init__(self) -> None:
        self.seconds = 0.0

    def install(self) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        clock = self

        def timed_api_call(client: Any, operation_name: str, api_params: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(client, operation_name, api_params)
            finally:
                clock.seconds += time.perf_counter() - started

        BaseClient._make_api_call = timed_api_call  # type: ignore[method-assign]
