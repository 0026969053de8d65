"""Timing summaries and AWS request counting with botocore event hooks."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
        return {
            "n": self.n,
            "median_ms": self.median_ms,
            "p99_ms": self.p99_ms,
            "min_ms": self.min_ms,
        }


def ratio(numerator: Summary, denominator: Summary) -> dict[str, float]:
    return {
        "median": numerator.median_ms / denominator.median_ms,
        "p99": numerator.p99_ms / denominator.p99_ms,
    }


class RequestCounter:
    """Counts AWS API calls ("service:Operation") with botocore 'before-call' hooks.

    'before-call' fires once per API call, before retries ('before-send' would count HTTP
    attempts, equal here since moto never throttles). Two independent tallies:
    - `hooked`: the emitters attached explicitly: the layer's clients (built once by
      card_tokens.aws), boto3's default session, the floor's and the tutorial's clients;
    - `everywhere`: every botocore session created after `install_everywhere()` (the handler is
      added to botocore's built-in handlers, as moto does), so a client the explicit hooks miss
      still shows up as a difference between the two.
    """

    def __init__(self) -> None:
        self.hooked: Counter[str] = Counter()
        self.everywhere: Counter[str] = Counter()
        self._attached: set[int] = set()

    def attach(self, emitter: Any) -> None:
        if id(emitter) in self._attached:
            return
        emitter.register("before-call", self._count_hooked, unique_id=f"bench-hooked-{id(self)}")
        self._attached.add(id(emitter))

    def install_everywhere(self) -> None:
        """Count in every session created from now on (call before the clients exist)."""
        from botocore.handlers import BUILTIN_HANDLERS

        BUILTIN_HANDLERS.append(("before-call", self._count_everywhere))

    def _count_hooked(self, model: Any, **_: Any) -> None:
        self.hooked[_name(model)] += 1

    def _count_everywhere(self, model: Any, **_: Any) -> None:
        self.everywhere[_name(model)] += 1

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


@dataclass(frozen=True)
class Window:
    hooked: Counter[str]
    everywhere: Counter[str]


def _name(model: Any) -> str:
    return f"{model.service_model.service_name}:{model.name}"


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
