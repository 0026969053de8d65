"""Every flow under each logging switch an operator can turn on, with all output scanned.

POWERTOOLS_LOGGER_LOG_EVENT=true, POWERTOOLS_DEV=true, POWERTOOLS_LOG_LEVEL=DEBUG, the root logger
at DEBUG, and Lambda's ApplicationLogLevel=DEBUG (AWS_LAMBDA_LOG_LEVEL) must not put card data,
tokens, KMS data keys or the signing key in the logs. Each switch is read at the cold start, so
each runs in a fresh process (tests/log_switches_child.py says how each one is put in place);
the processes run side by side, on moto in-process, and everything they write is scanned.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.emulator import in_process_aws_environment
from tests.log_switches_child import CARDHOLDER, CVVS, SWITCHES

pytestmark = pytest.mark.logscan

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_SECONDS = 180
# One line of each kind the flows must log: without them the scan saw nothing and proves nothing.
LOG_LINES = (
    "token issued",
    "payment authorized",
    "token rejected",
    "request refused",
    "dependency unavailable",
    "unhandled error",
    "signing key rotated",
    "reconciliation done",
)


def child_environment(switch: str) -> dict[str, str]:
    """This process's environment without its AWS and Powertools settings, plus the switch's."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "POWERTOOLS_", "_X_AMZN"))
        and name not in ("LOG_LEVEL", "PYTHONPATH", "PYTHONWARNINGS")
    }
    python_path = ["layers/card_tokens", "functions", "client", "."]  # as pyproject's pytest
    return {
        **inherited,
        **in_process_aws_environment("log-switches"),
        "PYTHONPATH": os.pathsep.join(str(REPO_ROOT / path) for path in python_path),
        **SWITCHES[switch].variables,
    }


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    folder: Path

    def finish(self) -> tuple[str, dict[str, Any]]:
        """Everything the process wrote (stdout, stderr), and what it handed out."""
        returncode = self.process.wait(timeout=RUN_SECONDS)
        stdout = (self.folder / "stdout").read_text(encoding="utf-8", errors="replace")
        stderr = (self.folder / "stderr").read_text(encoding="utf-8", errors="replace")
        # A traceback of the harness may quote values: say where it failed, not what it printed.
        assert returncode == 0, f"the run failed (exit {returncode}); see {self.folder}/stderr"
        handed_out = self.folder / "result.json"
        result: dict[str, Any] = json.loads(handed_out.read_text(encoding="utf-8"))
        handed_out.unlink()  # emulated keys, but key material all the same: not left behind
        return stdout + "\n" + stderr, result


def _switch_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    switch = callspec.params.get("switch") if callspec is not None else None
    return str(switch) if switch is not None else None


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Started]]:
    """One cold start per selected switch, all started at once."""
    selected = {
        switch
        for item in request.session.items
        if item.path == Path(__file__) and (switch := _switch_of(item)) is not None
    }
    started: dict[str, Started] = {}
    for switch in sorted(selected):
        folder = tmp_path_factory.mktemp(f"log-switch-{switch}")
        with (folder / "stdout").open("wb") as stdout, (folder / "stderr").open("wb") as stderr:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.log_switches_child",
                    switch,
                    str(folder / "result.json"),
                ],
                cwd=REPO_ROOT,
                env=child_environment(switch),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
        started[switch] = Started(process, folder)
    yield started
    for run in started.values():
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def _spaced_pattern(pan: str) -> str:
    return r"[ -]?".join(pan)


def leaks(output: str, result: dict[str, Any]) -> list[str]:
    """What of the handed-out secrets the output holds, by name only (never the values)."""
    found = []
    for pan, cvv in CVVS.items():
        if re.search(_spaced_pattern(pan), output):
            found.append(f"PAN ending {pan[-4:]}")
        if re.search(rf"cvv[\W_]{{0,20}}{cvv}(?!\d)", output, re.IGNORECASE):
            found.append(f"CVV of the card ending {pan[-4:]}")
    if CARDHOLDER in output:
        found.append("the cardholder name")
    for index, token in enumerate(result["tokens"]):
        if token in output:
            found.append(f"token #{index}")
        for part, segment in enumerate(token.split(".")):
            if len(segment) >= 16 and segment in output:
                found.append(f"token #{index}, segment {part}")
    for index, encoded in enumerate(result["data_keys"]):
        key = base64.b64decode(encoded)
        forms = {
            "base64": base64.b64encode(key).decode().rstrip("="),
            "base64url": base64.urlsafe_b64encode(key).decode().rstrip("="),
            "hex": key.hex(),
        }
        found.extend(
            f"KMS data key #{index} ({form})" for form, text in forms.items() if text in output
        )
    if "PRIVATE KEY" in output:
        found.append("a PEM PRIVATE KEY marker")
    for index, line in enumerate(result["pem_lines"]):
        if len(line) >= 16 and line in output:
            found.append(f"line {index} of a private key PEM")
    for index, member in enumerate(result["jwk_members"]):
        if member in output:
            found.append(f"private JWK member #{index}")
    if re.search(r'\\*"(?:d|p|q|dp|dq|qi)\\*"\s*:', output):
        found.append("a private JWK member name")
    if result["marker"] in output:
        found.append("an event logged whole (its marker)")
    found.extend(label for label, canary in result["must_not_appear"].items() if canary in output)
    return found


@pytest.mark.parametrize("switch", list(SWITCHES))
def test_no_card_data_token_or_key_material_reaches_the_output(
    switch: str, runs: dict[str, Started]
) -> None:
    # Given every flow ran in a cold start under this switch, all output captured
    output, result = runs[switch].finish()
    # Then each flow got its answer (so each path really ran) ...
    wrong = {name: got for name, (got, expected) in result["statuses"].items() if got != expected}
    assert not wrong, f"unexpected status codes: {wrong}"
    # ... the scan saw the service's logs and the switch's effect (so it can fail) ...
    for line in LOG_LINES:
        assert line in output, f"the scan did not see {line!r}: is output captured?"
    for label, canary in result["must_appear"].items():
        assert canary in output, f"the switch is not in effect: no {label} in the output"
    assert result["tokens"], "no token was handed out"
    assert result["data_keys"], "no KMS data key was captured"
    assert result["pem_lines"], "no signing key was read from the secret"
    # ... and the output holds no card data, token, data key, private key or whole event
    found = leaks(output, result)
    assert not found, f"under {switch} the output holds: {'; '.join(found)}"


FAKE_KEY = bytes(range(32))
FAKE_RESULT: dict[str, Any] = {
    "tokens": [
        "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJhYmMiLCJzZWFsZWQiOiJ4In0.c2lnbmF0dXJlLWJ5dGVzLTEyMzQ"
    ],
    "data_keys": [base64.b64encode(FAKE_KEY).decode()],
    "pem_lines": ["MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgabcdefghijklmnop"],
    "jwk_members": ["q1w2e3r4t5y6u7i8o9p0q1w2e3r4t5y6u7i8o9p0abc"],
    "marker": "logscan-event-0123456789abcdef",
    "must_not_appear": {"a DEBUG record of botocore.parsers": "probe-botocore.parsers-00ff"},
}


@pytest.mark.parametrize(
    ("output", "finding"),
    [
        ('{"body": "{\\"card_number\\": \\"4242 4242 4242 4242\\"}"}', "PAN ending 4242"),
        ("3782822463 10005", "PAN ending 0005"),
        ('{\\"cvv\\": \\"739\\"}', "CVV of the card ending 4242"),
        ("claims eyJqdGkiOiJhYmMiLCJzZWFsZWQiOiJ4In0 only", "token #0, segment 1"),
        (f"Plaintext: {base64.b64encode(FAKE_KEY).decode()}", "KMS data key #0 (base64)"),
        (f"key {FAKE_KEY.hex()}", "KMS data key #0 (hex)"),
        ("-----BEGIN PRIVATE KEY-----", "a PEM PRIVATE KEY marker"),
        (f"\\n{FAKE_RESULT['pem_lines'][0]}\\n", "line 0 of a private key PEM"),
        ('{"kty": "EC", "d": "abc"}', "a private JWK member name"),
        ("x-logscan-event: logscan-event-0123456789abcdef", "an event logged whole (its marker)"),
        ("logscan probe probe-botocore.parsers-00ff", "a DEBUG record of botocore.parsers"),
    ],
)
def test_the_scan_finds_each_kind_of_secret(output: str, finding: str) -> None:
    assert finding in leaks(output, FAKE_RESULT)


def test_the_scan_passes_ordinary_log_lines() -> None:
    output = (
        '{"level":"INFO","message":"token issued","brand":"visa","kid":"s_42JMmA","last4":"4242"}'
    )
    assert leaks(output, FAKE_RESULT) == []
