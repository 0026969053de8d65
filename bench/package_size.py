"""Package size after `sam build`: the layer and each function, unzipped, against a budget."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
# Lambda's hard limit is 250 MB unzipped for a function and all its layers together. The
# budgets leave room to grow while keeping cold starts honest: the layer is four pinned
# libraries and their dependencies (~55 MB today, botocore alone ~24 MB); a handler is one file.
BUDGET_BYTES = {
    "CardTokensLayer": 70 * MB,
    "IssueTokenFunction": 64 * 1024,
    "ProcessPaymentFunction": 64 * 1024,
    "ReconcilePaymentsFunction": 64 * 1024,
    "RotateSigningKeyFunction": 64 * 1024,
}
LAMBDA_UNZIPPED_LIMIT = 250 * MB
SOURCES = ("template.yaml", "samconfig.toml", "functions", "layers")


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _largest(folder: Path, count: int = 6) -> list[tuple[str, int]]:
    """The biggest top-level entries of a layer's python/ folder (distributions, modules)."""
    python = folder / "python"
    base = python if python.is_dir() else folder
    sizes = [
        (entry.name, _size(entry) if entry.is_dir() else entry.stat().st_size)
        for entry in base.iterdir()
    ]
    return sorted(sizes, key=lambda pair: -pair[1])[:count]


def run() -> dict[str, Any]:
    """`sam build` of a clean copy of the sources; sizes of what it produced."""
    sam = Path(sys.executable).parent / "sam"
    if not sam.exists():
        return {"skipped": f"sam build unavailable: {sam} does not exist"}
    # sam build (python3.13, no container) needs a python3.13 on PATH: the one behind this venv.
    path = f"{Path(sys.base_prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    with tempfile.TemporaryDirectory(prefix="card-tokens-sam-") as scratch:
        source = Path(scratch) / "src"
        source.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name in SOURCES:
            origin = ROOT / name
            if origin.is_dir():
                shutil.copytree(origin, source / name, ignore=ignore)
            elif origin.exists():
                shutil.copy(origin, source / name)
        build = Path(scratch) / "build"
        started = time.perf_counter()
        done = subprocess.run(  # noqa: S603 - the venv's sam, our arguments
            [str(sam), "build", "--template-file", "template.yaml", "--build-dir", str(build)],
            cwd=source,
            capture_output=True,
            text=True,
            env={**os.environ, "PATH": path, "SAM_CLI_TELEMETRY": "0"},
            check=False,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            return {"skipped": f"sam build failed ({done.returncode}): {done.stderr[-800:]}"}
        artifacts = {}
        folders = sorted(p for p in build.iterdir() if p.is_dir())
        for folder in folders:
            size = _size(folder)
            budget = BUDGET_BYTES.get(folder.name)
            artifacts[folder.name] = {
                "bytes": size,
                "files": sum(1 for p in folder.rglob("*") if p.is_file()),
                "bytecode_files": sum(1 for _ in folder.rglob("*.pyc")),
                "budget_bytes": budget,
                "within_budget": budget is None or size <= budget,
                "largest": _largest(folder) if folder.name.endswith("Layer") else [],
            }
        # What shipping bytecode (proposal 1 in results.md) would cost in size: Python 3.13,
        # like the runtime; bytecode is the same for arm64 and x86_64.
        subprocess.run(  # noqa: S603 - our interpreter, our arguments
            [
                sys.executable,
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                str(build),
            ],
            capture_output=True,
            check=False,
        )
        for folder in folders:
            artifacts[folder.name]["bytes_with_bytecode"] = _size(folder)
    return {
        "command": "sam build --template-file template.yaml (clean copy; python3.13, arm64)",
        "build_seconds": seconds,
        "artifacts": artifacts,
        "lambda_unzipped_limit_bytes": LAMBDA_UNZIPPED_LIMIT,
    }
