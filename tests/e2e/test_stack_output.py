"""What `make run` prints per request: the access line only, or with --verbose the functions' logs.

The functions' own logs (Powertools JSON lines and EMF metrics, 300 to 600 characters each) are
what Lambda writes to CloudWatch Logs; by default the stack drops them and prints one access line
per request, and `--verbose` (make run VERBOSE=1) prints them as well.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.stack_process import RunningLocalStack

ACCESS_LINE = re.compile(r"^(GET|POST) /\S* \d{3} \d+\.\dms \S+$")


def run_one_payment(tmp_path: Path, *, verbose: bool) -> tuple[RunningLocalStack, list[str]]:
    """A stack of its own: started, a token issued and paid, stopped. The lines after its banner."""
    stack = RunningLocalStack.start(tmp_path / "stack.log", verbose=verbose)
    try:
        assert stack.pay(stack.issue_token()).status == 201
        assert stack.wait_for_log_lines("POST /payments 201 ")
    finally:
        stack.stop()
    output = stack.stop_and_scan()
    _, _, after = output.partition("Ctrl-C stops it.\n")
    assert after, output[-4000:]
    return stack, [line for line in after.splitlines() if line != "Stopping."]


def test_by_default_each_request_prints_its_access_line_and_nothing_else(tmp_path: Path) -> None:
    stack, lines = run_one_payment(tmp_path, verbose=False)

    assert [line.split()[:3] for line in lines] == [
        ["GET", "/.well-known/jwks.json", "200"],
        ["POST", "/tokens", "201"],
        ["POST", "/payments", "201"],
    ]
    assert all(ACCESS_LINE.match(line) for line in lines), lines
    # nothing of the functions' logs, not even from the start-up rotation
    assert '"level"' not in stack.log()
    assert "make run VERBOSE=1" in stack.log()


def test_verbose_adds_the_functions_json_logs_and_metrics(tmp_path: Path) -> None:
    stack, lines = run_one_payment(tmp_path, verbose=True)

    access = [line for line in lines if ACCESS_LINE.match(line)]
    logs = [line for line in lines if line.startswith("{")]
    assert [line.split()[:3] for line in access] == [
        ["GET", "/.well-known/jwks.json", "200"],
        ["POST", "/tokens", "201"],
        ["POST", "/payments", "201"],
    ]
    assert sorted(set(lines) - set(access) - set(logs)) == []
    assert any('"message":"token issued"' in line for line in logs)
    assert any('"CloudWatchMetrics"' in line for line in logs)
    assert '"message":"signing key rotated"' in stack.log()  # the start-up rotation's log too
