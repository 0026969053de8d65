"""template.yaml passes `sam validate --lint` and cfn-lint, offline."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, run_captured

TEMPLATE = REPO_ROOT / "template.yaml"
# The tools installed next to the interpreter running the tests, not whatever is on PATH.
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    """Environment for the SAM CLI that gives it nothing to call home about.

    Fake credentials and a fixed region so no lookup reaches a profile or the instance metadata
    endpoint; telemetry off; and a private SAM config dir whose last version check is "now",
    so the CLI skips its weekly PyPI request.
    """
    sam_dir = tmp_path / "sam-cli"
    sam_dir.mkdir()
    (sam_dir / "metadata.json").write_text(
        json.dumps({"lastVersionCheck": time.time(), "telemetryEnabled": False}),
        encoding="utf-8",
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and key != "__SAM_CLI_APP_DIR"
    }
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "SAM_CLI_TELEMETRY": "0",
            "__SAM_CLI_APP_DIR": str(sam_dir),
        }
    )
    return env


def test_sam_validate_with_lint_passes(offline_env: dict[str, str]) -> None:
    result = run_captured(
        [
            str(VENV_BIN / "sam"),
            "validate",
            "--lint",
            "--template-file",
            str(TEMPLATE),
            "--region",
            "us-east-1",
        ],
        env=offline_env,
        timeout=300,
    )

    assert result.returncode == 0, f"sam validate --lint failed:\n{result.stdout}\n{result.stderr}"
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint_passes_including_informational_rules(offline_env: dict[str, str]) -> None:
    # `-c I` adds the informational rules (e.g. I3011: explicit deletion policies on stateful
    # resources), which cfn-lint skips by default.
    result = run_captured(
        [str(VENV_BIN / "cfn-lint"), "--include-checks", "I", "--", str(TEMPLATE)],
        env=offline_env,
        timeout=300,
    )

    assert result.returncode == 0, f"cfn-lint failed:\n{result.stdout}\n{result.stderr}"
