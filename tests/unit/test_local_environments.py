"""local.environments: Lambda-like execution environments, each a worker process of its own."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from local.environments import (
    ROOT,
    EnvironmentsClosedError,
    FunctionEnvironments,
    FunctionError,
    FunctionSpec,
    FunctionTimeoutError,
)
from local.gateway import LocalRestApi
from local.http_api import Route
from local.lambda_runtime import LocalFunction

HANDLER = """
import os
import time

INVOCATIONS = 0  # module state: each execution environment has its own


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    time.sleep(event.get("sleep", 0))
    if event.get("fail"):
        raise RuntimeError("the handler failed")
    return {
        "pid": os.getpid(),
        "invocations_here": INVOCATIONS,
        "greeting": os.environ.get("GREETING"),
        "function_name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
"""

MakePool = Callable[..., FunctionEnvironments]


@pytest.fixture
def code(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(HANDLER, encoding="utf-8")
    (tmp_path / "broken.py").write_text("raise ImportError('no such dependency')\n")
    return tmp_path


def spec_for(code: Path, *, timeout: float = 10, handler: str = "app.handler") -> FunctionSpec:
    return FunctionSpec("Echo", "stack-Echo", str(code), handler, 128, timeout)


@pytest.fixture
def make_pool(code: Path) -> Iterator[MakePool]:
    pools: list[FunctionEnvironments] = []

    def make(max_environments: int = 3, **spec: Any) -> FunctionEnvironments:
        variables = {**os.environ, "GREETING": "hello"}
        pool = FunctionEnvironments(spec_for(code, **spec), variables, max_environments)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (nobody may reap an orphan here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def in_parallel(pool: FunctionEnvironments, events: list[dict[str, Any]]) -> list[Any]:
    barrier = threading.Barrier(len(events))
    results: list[Any] = [None] * len(events)

    def call(index: int) -> None:
        barrier.wait()
        results[index] = pool.invoke(events[index])

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(events))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_an_environment_starts_at_the_first_invocation_and_is_reused(make_pool: MakePool) -> None:
    pool = make_pool()
    assert pool.snapshot()["environments"] == []

    first, second = pool.invoke({}), pool.invoke({})

    assert first["pid"] == second["pid"] != os.getpid()
    assert (first["invocations_here"], second["invocations_here"]) == (1, 2)
    snapshot = pool.snapshot()
    assert snapshot["started"] == 1
    assert [(e["pid"], e["invocations"]) for e in snapshot["environments"]] == [(first["pid"], 2)]


def test_an_environment_has_the_functions_variables_and_a_context_with_its_timeout(
    make_pool: MakePool,
) -> None:
    result = make_pool(timeout=7).invoke({})

    assert (result["greeting"], result["function_name"]) == ("hello", "stack-Echo")
    assert 6000 < result["remaining_ms"] <= 7000


def test_concurrent_invocations_run_in_separate_processes_up_to_the_cap(
    make_pool: MakePool,
) -> None:
    pool = make_pool(max_environments=3)

    results = in_parallel(pool, [{"sleep": 1.0}] * 6)

    pids = {result["pid"] for result in results}
    assert len(pids) == 3  # six at once, but never more than three environments
    assert os.getpid() not in pids
    snapshot = pool.snapshot()
    assert (snapshot["started"], snapshot["peak_busy"]) == (3, 3)
    assert sum(e["invocations"] for e in snapshot["environments"]) == 6


def test_an_environment_is_started_only_when_every_other_one_is_busy(
    make_pool: MakePool,
) -> None:
    pool = make_pool(max_environments=4)

    for _ in range(5):
        pool.invoke({})

    assert pool.snapshot()["started"] == 1


def test_a_timeout_kills_the_environment_and_the_next_invocation_gets_a_new_one(
    make_pool: MakePool,
) -> None:
    pool = make_pool(max_environments=1, timeout=1)
    old_pid = pool.invoke({})["pid"]
    started = time.monotonic()

    with pytest.raises(FunctionTimeoutError, match=r"Task timed out after 1\.00 seconds"):
        pool.invoke({"sleep": 30})

    assert time.monotonic() - started < 5
    assert wait_until(lambda: not alive(old_pid))
    assert pool.invoke({})["pid"] != old_pid


def test_a_timeout_through_the_gateway_is_its_502_with_one_log_line(make_pool: MakePool) -> None:
    pool = make_pool(timeout=1)
    errors = io.StringIO()
    # The route's function sleeps past its one-second Timeout.
    api = LocalRestApi(
        [Route("POST", "/slow", "Echo")],
        {"Echo": lambda event: pool.invoke({**event, "sleep": 30})},
        errors=errors,
    )

    response, request_id = api.handle(
        method="POST", target="/slow", headers=[], body=b"{}", source_ip="127.0.0.1"
    )

    assert (response.status, json.loads(response.body)) == (
        502,
        {"message": "Internal server error"},
    )
    lines = errors.getvalue().splitlines()
    assert len(lines) == 1
    assert "Task timed out after 1.00 seconds" in lines[0]
    assert request_id in lines[0]


def test_a_handler_error_is_reported_and_the_environment_stays(make_pool: MakePool) -> None:
    pool = make_pool()
    pid = pool.invoke({})["pid"]

    with pytest.raises(FunctionError) as raised:
        pool.invoke({"fail": True})

    assert "RuntimeError: the handler failed" in raised.value.details
    assert pool.invoke({})["pid"] == pid


def test_an_import_error_fails_the_invocation_and_leaves_no_environment(
    make_pool: MakePool,
) -> None:
    pool = make_pool(handler="broken.handler")

    with pytest.raises(FunctionError, match="init failed") as raised:
        pool.invoke({})

    assert "no such dependency" in raised.value.details
    assert pool.snapshot()["environments"] == []


def test_close_stops_the_environments_and_refuses_new_invocations(make_pool: MakePool) -> None:
    pool = make_pool()
    pid = pool.invoke({})["pid"]

    pool.close()

    assert wait_until(lambda: not alive(pid))
    with pytest.raises(EnvironmentsClosedError):
        pool.invoke({})


def test_a_local_function_with_environments_is_invoked_in_them(code: Path) -> None:
    function = LocalFunction("Echo", "stack-Echo", code, "app.handler", 128, 3)
    pool = function.run_in_environments({**os.environ, "GREETING": "hi"}, 2, [])
    try:
        result = function.invoke({})
    finally:
        pool.close()

    assert (result["greeting"], result["pid"] != os.getpid()) == ("hi", True)


PARENT = """
import json, os, sys, threading, time
from local.environments import FunctionEnvironments, FunctionSpec

spec = FunctionSpec(**json.loads(sys.argv[1]))
pool = FunctionEnvironments(spec, dict(os.environ), 1)
busy = sys.argv[2] == "busy"
if busy:
    threading.Thread(target=pool.invoke, args=({"sleep": 60},), daemon=True).start()
else:
    pool.invoke({})
while not pool.snapshot()["environments"] or (busy and not pool.snapshot()["busy"]):
    time.sleep(0.05)
print(pool.snapshot()["environments"][0]["pid"], flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_a_worker_exits_when_its_parent_is_killed(code: Path, state: str) -> None:
    spec = json.dumps(asdict(spec_for(code, timeout=90)))
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, spec, state],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    worker_pid = 0
    try:
        assert parent.stdout is not None
        worker_pid = int(parent.stdout.readline())
        assert alive(worker_pid)

        parent.kill()  # SIGKILL: no chance to stop its workers
        parent.wait()

        assert wait_until(lambda: not alive(worker_pid), timeout=5)
    finally:
        parent.kill()
        parent.wait()
        if worker_pid and alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)
