"""Small helpers any test may use, whatever its folder."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run(
    command: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    cwd: Path = REPO_ROOT,
) -> subprocess.CompletedProcess[str]:
    """`command` run from the repository root, its output captured as text. The exit status is
    returned, not raised: the caller asserts on it with the output as the message."""
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
