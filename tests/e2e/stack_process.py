"""The local stack (`python -m local.stack`) in a subprocess, a small HTTP client, a log scan."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90
STOP_SECONDS = 30

CARDHOLDER = "Ada E2E-Lovelace"
VISA = {
    "card_number": "4242 4242 4242 4242",
    "exp_month": 12,
    "exp_year": 2030,
    "cvv": "123",
    "cardholder_name": CARDHOLDER,
}
DECLINED_VISA = {**VISA, "card_number": "4000 0000 0000 0002"}
TEST_PANS = ("4242424242424242", "4000000000000002")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_code(self) -> str | None:
        document = self.json()
        return document.get("error", {}).get("code") if isinstance(document, dict) else None


@dataclass
class LocalStack:
    """A running `python -m local.stack`; everything it prints goes to `log_path`."""

    process: subprocess.Popen[bytes]
    port: int
    moto_port: int
    log_path: Path
    issued_tokens: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        headers = dict(headers or {})
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return Reply(
                response.status,
                {name.lower(): value for name, value in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def issue_token(self, card: dict[str, Any] = VISA) -> str:
        reply = self.request("POST", "/tokens", card)
        assert reply.status == 201, reply.body
        token: str = reply.json()["token"]
        self.issued_tokens.append(token)
        return token

    def pay(self, token: str, amount: int = 1999, idempotency_key: str | None = None) -> Reply:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"token": token, "amount": amount, "currency": "EUR", "reference": "order-1234"}
        return self.request("POST", "/payments", body, headers)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log_lines(self, prefix: str, timeout: float = 5.0) -> list[str]:
        """The log lines that start with `prefix`, once there is at least one."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.log().splitlines() if line.startswith(prefix)]
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def stop(self) -> int:
        """Ctrl-C, as a developer would; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"the local stack ignored SIGINT for {STOP_SECONDS}s")
        return self.process.returncode


def start_stack(port: int, moto_port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local.stack",
                "--port",
                str(port),
                "--moto-port",
                str(moto_port),
            ],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def wait_until_serving(stack: LocalStack) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            pytest.fail(f"the local stack exited with {stack.process.returncode}:\n{stack.log()}")
        try:
            if stack.request("GET", "/.well-known/jwks.json").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    stack.stop()
    pytest.fail(f"the local stack did not answer within {STARTUP_SECONDS}s:\n{stack.log()}")


def card_data_leaks(output: str, tokens: list[str]) -> list[str]:
    """Every kind of card data or token found in the output (names only, never the values)."""
    found = []
    for pan in TEST_PANS:
        if re.search(r"[ -]?".join(pan), output):
            found.append(f"PAN ending {pan[-4:]}")
    if re.search(r"""cvv["']?\s*[:=]\s*["']?\d{3,4}""", output, re.IGNORECASE):
        found.append("a CVV value")
    if CARDHOLDER in output:
        found.append("the cardholder name")
    for index, token in enumerate(tokens):
        _, claims, signature = token.split(".")
        if claims in output or signature in output:
            found.append(f"issued token #{index}")
    return found
