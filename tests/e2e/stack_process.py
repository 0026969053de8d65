"""The stack the e2e tests talk to, through the shipped client (card_tokens_client); a log scan.

`RunningLocalStack` is `python -m local.stack` in a subprocess. `DeployedStack` is a stack on
AWS, found by name (AWS_SAM_STACK_NAME) through its CloudFormation Outputs; the client signs the
requests to the routes the stack puts behind AWS_IAM, as a merchant back end does.
"""

from __future__ import annotations

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
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from card_tokens_client.api import (
    JWKS_REQUEST,
    CardInput,
    CardTokensApi,
    Reply,
    Unreachable,
    payment_request,
)
from card_tokens_client.signing import RequestSigner, region_from_host
from local.intrinsics import REGION
from local.stack import banner_publishable_key, curl_example
from tests.cards import CARDHOLDER, TEST_PANS, VISA
from tests.support import REPO_ROOT

STARTUP_SECONDS = 90
STOP_SECONDS = 30


def merchant_headers(publishable_key: str | None, origin: str | None = None) -> dict[str, str]:
    """What a merchant's page adds to POST /tokens: its publishable key, and its Origin."""
    headers = {"Authorization": f"Bearer {publishable_key}"} if publishable_key else {}
    return headers | ({"Origin": origin} if origin else {})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class StackUnderTest:
    """What every e2e test talks to, local or deployed: the client, and the tokens it issued
    (the scan of the stack's output looks for each)."""

    api: CardTokensApi
    issued_tokens: list[str]
    # The merchant that tokenizes (Authorization: Bearer), or None for a single-caller stack.
    publishable_key: str | None = None

    @property
    def base_url(self) -> str:
        return self.api.base_url

    def issue_token(self, card: dict[str, Any] = VISA) -> str:
        body = CardInput(**card).request_body()
        reply = self.api.request("POST", "/tokens", body, merchant_headers(self.publishable_key))
        assert reply.status == 201, reply.error_code
        token = str(reply.json()["token"])
        self.issued_tokens.append(token)
        return token

    def pay(self, token: str, amount: int = 1999, idempotency_key: str | None = None) -> Reply:
        return self.api.send(payment_request(token, amount, "EUR", "order-1234", idempotency_key))


@dataclass
class RunningLocalStack(StackUnderTest):
    """A running `python -m local.stack`; everything it prints goes to `log_path`."""

    process: subprocess.Popen[bytes]
    port: int
    moto_port: int
    log_path: Path
    issued_tokens: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.api = CardTokensApi(f"http://127.0.0.1:{self.port}")

    @classmethod
    def start(
        cls,
        log_path: Path,
        *options: str,
        moto_port: int | None = None,
        verbose: bool = True,
        merchants: bool = False,
    ) -> RunningLocalStack:
        """Started on free ports (the emulator's given, for --aws-endpoint-url), and serving.

        As `make run` (a demo merchant whose key tokenizes) with `merchants`; else a stack that
        serves a single caller, as the tests written before merchants expect.
        """
        port, moto_port = free_port(), moto_port or free_port()
        if not merchants:
            options = ("--single-caller", *options)
        stack = cls(
            start_stack(port, moto_port, log_path, *options, verbose=verbose),
            port,
            moto_port,
            log_path,
        )
        wait_until_serving(stack)
        stack.publishable_key = banner_publishable_key(stack.log())
        assert merchants == (stack.publishable_key is not None), "no demo merchant's key shown"
        return stack

    def dynamodb(self) -> Any:
        """A DynamoDB client on the stack's emulator, as an operator's tools reach it."""
        return boto3.client(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{self.moto_port}",
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @property
    def credentials_file(self) -> Path:
        """The local merchants' credentials (a profile each), next to the log."""
        return credentials_file_of(self.log_path)

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

    def stop_and_scan(self, *more_output: str) -> str:
        """Ctrl-C: it exits 0, and nothing it printed (nor `more_output`) holds card data or an
        issued token. Its output."""
        exit_code = self.stop()
        output = self.log()
        assert exit_code == 0, f"the local stack exited with {exit_code}:\n{output[-4000:]}"
        # The banner's curl example is the one place a (test) card number is printed on purpose.
        banner_curl = curl_example(self.base_url, self.publishable_key)
        scanned = "\n".join([output.replace(banner_curl, ""), *more_output])
        leaks = card_data_leaks(scanned, self.issued_tokens)
        assert not leaks, f"the local stack's output holds {leaks}; see {self.log_path}"
        return output


class DeployedStackError(RuntimeError):
    """The deployed stack cannot be used: missing, without the outputs, or no credentials."""


@dataclass
class DeployedStack(StackUnderTest):
    """A card-tokens stack on AWS: its Outputs, and a client that signs with the caller's keys."""

    stack_name: str
    outputs: dict[str, str]
    region: str
    api: CardTokensApi
    issued_tokens: list[str] = field(default_factory=list)

    @classmethod
    def from_cloudformation(
        cls,
        stack_name: str,
        *,
        cloudformation: Any = None,
        credentials: Credentials | None = None,
        region: str | None = None,
    ) -> DeployedStack:
        """The stack's URL and names from DescribeStacks; the caller's AWS credentials sign."""
        session = boto3.Session()
        cloudformation = cloudformation or session.client("cloudformation")
        try:
            stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        except (ClientError, BotoCoreError) as error:
            raise DeployedStackError(
                f"AWS_SAM_STACK_NAME={stack_name}: CloudFormation DescribeStacks failed ({error})"
            ) from error
        outputs = {
            output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])
        }
        if "ApiUrl" not in outputs:
            raise DeployedStackError(
                f"stack {stack_name} has no ApiUrl output (status {stacks[0]['StackStatus']})"
            )
        credentials = credentials or session.get_credentials()
        if credentials is None:
            raise DeployedStackError(
                "no AWS credentials: requests to the IAM-authorized /payments routes are signed"
            )
        url = outputs["ApiUrl"]
        region = region or region_from_host(urlsplit(url).hostname or "") or session.region_name
        if not region:
            raise DeployedStackError(f"no region to sign requests to {url} for")
        signer = RequestSigner(url, region, credentials=credentials)
        return cls(stack_name, outputs, region, CardTokensApi(url, signer))


_FLOW = "test_local_stack_flow.py"
_TOKENIZE_MJS = "test_tokenize_mjs_gets_a_token_and_reports_the_field_at_fault"
# (test module, test function or None for the whole module) → what a deployed stack lacks.
LOCAL_ONLY = {
    ("test_concurrency.py", None): (
        "reads the sandbox processor's ledger at /_local/sandbox-ledger, a route only the local "
        "stack serves"
    ),
    ("test_stack_cli.py", None): (
        "runs the local stack's, the events generator's and make invoke's command lines "
        "(local.stack, local.events, local.invoke) on this machine"
    ),
    ("test_stack_output.py", None): (
        "starts local stacks of its own to read what they print; a deployed stack's logs are in "
        "CloudWatch Logs"
    ),
    ("test_invoke.py", None): (
        "make invoke runs a handler in the test's process against the local stack's emulator "
        "(--moto-port); a deployed stack's AWS resources are not reachable that way"
    ),
    ("test_rotate_running_stack.py", None): (
        "rotates through the local emulator's port (--moto-port); a deployed stack's key "
        "rotates on Secrets Manager's schedule"
    ),
    ("test_fuzz_contract.py", None): (
        "schemathesis sends unsigned requests, and a deployed /payments needs SigV4 (AWS_IAM)"
    ),
    ("test_checkout_page.py", None): (
        "the checkout page is served by the local stack's gateway; a deployed stack serves no page"
    ),
    ("test_cross_merchant_http.py", None): (
        "adds merchants with local credentials through the local emulator (--moto-port); a "
        "deployed stack's merchants are the operator's (card-tokens merchants add)"
    ),
    (
        "test_integrate_snippets.py",
        "test_tokenize_mjs_gets_a_token_and_reports_the_field_at_fault",
    ): ("tokenizes with the local demo merchant's publishable key, which make run registers"),
    (
        "test_client_cli.py",
        "test_make_runs_demo_merchant_tokenizes_pays_and_reads_with_no_extra_step",
    ): ("finds the key on the local checkout page, which a deployed stack's CLI user is given"),
    (
        "test_client_cli.py",
        "test_another_local_merchants_profile_cannot_pay_the_demo_merchants_token",
    ): ("adds a merchant with local credentials through the local emulator (--moto-port)"),
    (_FLOW, "test_body_over_10_mib_is_refused_by_the_gateway_without_reading_it"): (
        "writes a raw HTTP/1.1 request to the local gateway's TCP port; a deployed API is HTTPS "
        "behind API Gateway"
    ),
    (_FLOW, "test_each_request_is_logged_as_one_line_with_method_path_status_and_time"): (
        "reads the local stack's access log from its output; a deployed stack's access log is in "
        "CloudWatch Logs"
    ),
}


def local_only_reason(module: str, function: str) -> str | None:
    """Why a test cannot run against a deployed stack, or None if it can."""
    return LOCAL_ONLY.get((module, function)) or LOCAL_ONLY.get((module, None))


def start_stack(
    port: int, moto_port: int, log_path: Path, *options: str, verbose: bool = True
) -> subprocess.Popen[bytes]:
    """`python -m local.stack` on these ports, with any further options (--aws-endpoint-url).

    --verbose by default: the functions' own logs are what the log scans check for card data.
    """
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
                *(["--verbose"] if verbose else []),
                # Never the repository's .local-stack/credentials of a developer's `make run`.
                "--credentials-file",
                str(credentials_file_of(log_path)),
                *options,
            ],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def credentials_file_of(log_path: Path) -> Path:
    return log_path.with_name(log_path.stem + ".credentials")


def wait_until_serving(stack: RunningLocalStack) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            pytest.fail(f"the local stack exited with {stack.process.returncode}:\n{stack.log()}")
        try:
            if stack.api.send(JWKS_REQUEST).status == 200:
                return
        except Unreachable:
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
