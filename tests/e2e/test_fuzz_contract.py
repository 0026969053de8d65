"""Schemathesis against the local stack with openapi.yaml: no 5xx, no answer off the contract.

`make test` runs a short budget; `make fuzz` sets FUZZ_EXAMPLES higher.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.stack_process import REPO_ROOT, LocalStack

pytestmark = pytest.mark.e2e

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)


def test_the_contract_holds_under_fuzzing(local_stack: LocalStack, tmp_path: Path) -> None:
    examples = os.environ.get("FUZZ_EXAMPLES", "25")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            str(REPO_ROOT / "openapi.yaml"),
            "--url",
            local_stack.base_url,
            "--checks",
            CHECKS,
            "--max-examples",
            examples,
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            os.environ.get("FUZZ_SEED", "20261128"),
        ],
        cwd=tmp_path,  # schemathesis writes its cassettes and caches here, not in the repo
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"},
    )
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert " passed" in summary, summary
