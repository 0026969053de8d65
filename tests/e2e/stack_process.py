"""The stack the e2e tests talk to: the local stack in a subprocess, or a deployed one; a log scan.

`LocalStack` runs `python -m local.stack`. `DeployedStack` is a stack on AWS, found by name
(AWS_SAM_STACK_NAME) through its CloudFormation Outputs; it signs the requests to the routes the
template marks AWS_IAM (SigV4, service execute-api), as a merchant back end does.
"""

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
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from local.cfn import load_template, resources_of_type
from local.http_api import Route

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


class StackClient:
    """What every e2e test talks to, local or deployed: JSON over HTTP, and the tokens issued."""

    issued_tokens: list[str]

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Reply:
        raise NotImplementedError

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
        return self.send(method, path, body, headers)

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


def _exchange(
    url: str, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> Reply:
    parts = urlsplit(url)
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(parts.netloc, timeout=30)
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


@dataclass
class LocalStack(StackClient):
    """A running `python -m local.stack`; everything it prints goes to `log_path`."""

    process: subprocess.Popen[bytes]
    port: int
    moto_port: int
    log_path: Path
    issued_tokens: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Reply:
        return _exchange(self.base_url, method, path, body, headers)

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


class DeployedStackError(RuntimeError):
    """The deployed stack cannot be used: missing, without the outputs, or no credentials."""


_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


def iam_authorized_routes(template: dict[str, Any] | None = None) -> list[Route]:
    """The routes template.yaml puts behind AWS_IAM: requests to them must be SigV4-signed."""
    template = load_template() if template is None else template
    routes = []
    functions = resources_of_type(template, "AWS::Serverless::Function")
    for logical_id, function in functions.items():
        for event in function.get("Properties", {}).get("Events", {}).values():
            properties = event.get("Properties", {})
            authorizer = properties.get("Auth", {}).get("Authorizer")
            if event.get("Type") == "Api" and authorizer == "AWS_IAM":
                method = str(properties["Method"]).upper()
                routes.append(Route(method, str(properties["Path"]), logical_id))
    return routes


@dataclass
class DeployedStack(StackClient):
    """A card-tokens stack on AWS: its Outputs, and SigV4 on the IAM-authorized routes."""

    stack_name: str
    outputs: dict[str, str]
    region: str
    credentials: Credentials
    signed_routes: list[Route]
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
        host = urlsplit(outputs["ApiUrl"]).hostname or ""
        match = _EXECUTE_API_HOST.match(host)
        region = region or (match.group(1) if match else None) or session.region_name
        if not region:
            raise DeployedStackError(f"no region to sign requests to {outputs['ApiUrl']} for")
        return cls(stack_name, outputs, region, credentials, iam_authorized_routes())

    @property
    def base_url(self) -> str:
        return self.outputs["ApiUrl"].rstrip("/")

    def needs_signature(self, method: str, path: str) -> bool:
        raw_path = path.split("?", 1)[0]
        return any(route.match(method, raw_path) is not None for route in self.signed_routes)

    def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Reply:
        url = self.base_url + path
        if self.needs_signature(method, path):
            request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
            SigV4Auth(self.credentials, "execute-api", self.region).add_auth(request)
            headers = dict(request.headers.items())
        target = urlsplit(url)
        path_and_query = target.path + (f"?{target.query}" if target.query else "")
        return _exchange(self.base_url, method, path_and_query, body, headers)


_FLOW = "test_local_stack_flow.py"
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
                *options,
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
