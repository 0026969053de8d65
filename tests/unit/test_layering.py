"""Pure beside I/O: only the adapters (card_tokens.ADAPTERS) import the AWS SDK, and tokens
and the pure modules (card_tokens.PURE) import with boto3 and botocore made unimportable."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import card_tokens
from card_tokens import ADAPTERS, PURE

LAYER = Path(card_tokens.__file__).resolve().parent
# boto3 and botocore themselves, and Powertools' parameters utility, which imports boto3.
AWS_SDK = ("boto3", "botocore", "aws_lambda_powertools.utilities.parameters")
# Run in a fresh interpreter: the SDK is refused before anything of the layer is imported.
WITHOUT_SDK = """
import importlib, sys

class RefuseSdk:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("boto3", "botocore"):
            raise ImportError(f"{name} is made unimportable here")
        return None

sys.meta_path.insert(0, RefuseSdk())
sys.path.insert(0, sys.argv[1])  # the layer, as Lambda puts it on the path
for module in sys.argv[2:]:
    importlib.import_module(module)
"""


def sdk_imports(source: str) -> list[str]:
    """The AWS SDK modules a module's source imports, at any depth of its code."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [n for n in names if any(n == s or n.startswith(s + ".") for s in AWS_SDK)]
    return found


def test_the_lists_name_every_module_at_most_once() -> None:
    modules = {path.stem for path in LAYER.glob("*.py")}
    assert set(ADAPTERS) <= modules
    assert set(PURE) <= modules
    assert not set(ADAPTERS) & set(PURE)


@pytest.mark.parametrize(
    "source",
    [
        "import boto3\n",
        "def f():\n    from botocore.exceptions import ClientError\n",
        "from aws_lambda_powertools.utilities.parameters import SecretsProvider\n",
        "from aws_lambda_powertools.utilities import parameters\n",
    ],
)
def test_the_scan_sees_an_sdk_import(source: str) -> None:
    assert sdk_imports(source)


def test_no_module_but_the_adapters_imports_the_aws_sdk() -> None:
    offenders = {
        path.stem: imports
        for path in sorted(LAYER.glob("*.py"))
        if path.stem not in ADAPTERS and (imports := sdk_imports(path.read_text()))
    }
    assert offenders == {}


def import_without_sdk(*modules: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SDK, str(LAYER.parent), *modules],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tokens_and_every_pure_module_import_without_boto3() -> None:
    modules = [f"card_tokens.{name}" for name in PURE]
    run = import_without_sdk(*modules)
    assert run.returncode == 0, run.stderr


def test_an_adapter_does_not_import_without_boto3() -> None:
    # The refusal works: the same run fails where the SDK is needed.
    run = import_without_sdk("card_tokens.kms_data_keys")
    assert run.returncode != 0
    assert "made unimportable" in run.stderr
