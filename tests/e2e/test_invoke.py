"""`make invoke` (python -m local.invoke): a sample event through its handler, against `make run`.

The handler runs in the invoking process, with no Docker, on the running stack's emulator: the
token it issues pays through the stack's own API, and the keys it publishes are the stack's.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.stack_process import RunningLocalStack, StackUnderTest
from tests.support import REPO_ROOT


def invoke(stack: StackUnderTest, *args: str) -> subprocess.CompletedProcess[str]:
    assert isinstance(stack, RunningLocalStack)
    return subprocess.run(
        [sys.executable, "-m", "local.invoke", *args, "--moto-port", str(stack.moto_port)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def answer(stdout: str) -> tuple[int, dict[str, str], object]:
    """The status, headers and JSON body that `make invoke` printed."""
    head, _, body = stdout.partition("\n\n")
    lines = head.splitlines()
    status_index = next(i for i, line in enumerate(lines) if line.startswith("HTTP "))
    headers = dict(line.split(": ", 1) for line in lines[status_index + 1 :])
    return int(lines[status_index].split()[1]), headers, json.loads(body)


def test_issue_token_event_is_201_and_its_token_pays_through_the_running_stack(
    local_stack: StackUnderTest,
) -> None:
    # When
    result = invoke(local_stack, "events/issue_token.json")

    # Then
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("POST /tokens → IssueTokenFunction, in this process")
    status, headers, body = answer(result.stdout)
    assert isinstance(body, dict)
    local_stack.issued_tokens.append(body["token"])
    assert status == 201
    assert headers["Content-Type"] == "application/json"
    assert body["card"] == {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}
    # and it was issued by the running stack's key, into its table: it pays there
    assert local_stack.pay(body["token"]).status == 201
    # the function's own JSON logs are not printed without --verbose
    assert '"level"' not in result.stdout + result.stderr


def test_jwks_event_is_200_with_the_running_stacks_keys(local_stack: StackUnderTest) -> None:
    result = invoke(local_stack, "events/jwks.json", "--verbose")

    assert result.returncode == 0, result.stderr
    status, headers, body = answer(result.stdout)
    assert status == 200
    assert headers["Cache-Control"] == "public, max-age=300"
    assert body == local_stack.api.request("GET", "/.well-known/jwks.json").json()
    # --verbose: the function's own logs, on stderr
    assert '"function_name":"card-tokens-local-PublishJwksFunction"' in result.stderr


def test_function_override_runs_a_function_without_a_route(local_stack: StackUnderTest) -> None:
    result = invoke(local_stack, "--function", "ReconcilePaymentsFunction")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ReconcilePaymentsFunction, in this process")
    assert isinstance(json.loads(result.stdout.split(":\n", 1)[1]), dict)
