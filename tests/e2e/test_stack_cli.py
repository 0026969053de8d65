"""How `python -m local.stack`, `local.events` and `local.invoke` fail when they cannot work."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.e2e.stack_process import free_port
from tests.support import REPO_ROOT


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_stack_on_a_taken_port_exits_2_with_a_clear_message(taken_port: int) -> None:
    # When
    result = run_module("local.stack", "--port", str(taken_port), "--moto-port", str(free_port()))

    # Then
    assert result.returncode == 2
    assert f"port {taken_port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_stack_with_a_taken_emulator_port_exits_2_naming_moto_port(taken_port: int) -> None:
    result = run_module("local.stack", "--port", str(free_port()), "--moto-port", str(taken_port))

    assert result.returncode == 2
    assert f"port {taken_port} on 127.0.0.1 is already in use" in result.stderr
    assert "--moto-port" in result.stderr


def test_events_without_a_running_stack_fails_clearly_and_writes_nothing() -> None:
    # Given nothing listens on the port
    port = free_port()
    before = {path: path.read_bytes() for path in (REPO_ROOT / "events").glob("*.json")}

    # When
    result = run_module("local.events", "--port", str(port))

    # Then
    assert result.returncode == 1
    assert f"no card-tokens stack answered at http://127.0.0.1:{port}" in result.stderr
    assert {path: path.read_bytes() for path in (REPO_ROOT / "events").glob("*.json")} == before


def test_invoke_without_a_running_stack_exits_3_saying_to_start_make_run() -> None:
    port = free_port()

    result = run_module("local.invoke", "events/jwks.json", "--moto-port", str(port))

    assert result.returncode == 3
    assert f"no local stack: nothing answers on 127.0.0.1:{port}" in result.stderr
    assert "Start `make run`" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
