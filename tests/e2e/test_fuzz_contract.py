"""Schemathesis against the local stack with openapi.yaml: every check, every phase, links followed.

Every check runs but two that test what the contract says the stack does not do
(tests/e2e/schemathesis.toml says why): 5xx, answers off the schema, schema-invalid requests
accepted, schema-valid ones refused, and in the stateful phase the chain POST /tokens →
POST /payments → GET /payments/{payment_id} along openapi.yaml's links, with a real token and a
real payment. tests/e2e/fuzz_hooks.py makes positive POST /tokens bodies real cards (the rules
no schema can state). `make test` runs a short budget; `make fuzz` sets FUZZ_EXAMPLES higher.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.stack_process import RunningLocalStack
from tests.support import REPO_ROOT

HERE = Path(__file__).resolve().parent
PHASES = ("examples", "coverage", "fuzzing", "stateful")
LINKS = 3  # openapi.yaml: PayWithTheToken, ReadThePayment, PayAgainWithTheSameToken


def test_the_contract_holds_under_fuzzing(local_stack: RunningLocalStack, tmp_path: Path) -> None:
    examples = os.environ.get("FUZZ_EXAMPLES", "25")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            str(REPO_ROOT / "openapi.yaml"),
            "--url",
            local_stack.base_url,
            # No --checks: every check runs, as schemathesis.toml leaves them
            "--max-examples",
            examples,
            "--workers",
            "1",
            "--phases",
            ",".join(PHASES),
            "--seed",
            os.environ.get("FUZZ_SEED", "20261128"),
        ],
        cwd=tmp_path,  # schemathesis writes its cassettes and caches here, not in the repo
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": str(HERE / "fuzz_hooks.py"),
            "SCHEMATHESIS_TELEMETRY": "false",
            "NO_COLOR": "1",
        },
    )
    summary = result.stdout[-8000:]
    assert result.returncode == 0, summary
    assert " passed" in summary, summary
    # Every phase ran and passed, the stateful one along every link, a real token included
    for phase in PHASES:
        assert f"✅ {phase.capitalize()}" in summary, summary
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected / (\d+) total", result.stdout)
    assert links is not None, summary
    assert links.groups() == (str(LINKS),) * 3, summary
