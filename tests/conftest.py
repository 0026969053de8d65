"""Shared by every test: Powertools settings, and the emulated AWS stack (moto in-process)."""

from __future__ import annotations

import os

# Powertools reads these when card_tokens.observability is first imported (by a test, or by
# local.* below); the values are template.yaml's Globals.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "card-tokens")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "CardTokens")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws

from local import moto_fixes
from local.cfn import load_template
from local.emulator import in_process_aws_environment
from local.lambda_runtime import LambdaContext
from local.provision import LocalStack, provision_stack
from local.rotation import rotate
from tests.flows import Invoke

TESTS = Path(__file__).parent
# Each suite's marker, set by the folder its tests are in: `pytest -m "not e2e"` and the like.
SUITE_MARKERS = {
    "unit": pytest.mark.unit,
    "integration": pytest.mark.integration,
    "security": pytest.mark.security,
    "template": pytest.mark.template,
    "e2e": pytest.mark.e2e,
    "processors": pytest.mark.processors,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(TESTS):
            marker = SUITE_MARKERS.get(item.path.relative_to(TESTS).parts[0])
            if marker is not None:
                item.add_marker(marker)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """One emulated account for the session, provisioned like `make run` does it."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [
            n for n in os.environ if n.startswith("AWS_ENDPOINT_URL") or n == "AWS_PROFILE"
        ]:
            patch.delenv(name)
        for name, value in in_process_aws_environment("integration-tests").items():
            patch.setenv(name, value)
        with mock_aws():
            moto_fixes.apply()
            local = provision_stack("card-tokens-it")
            for name, value in local.environment.items():
                patch.setenv(name, value)
            rotate(local.environment["SIGNING_KEY_SECRET_ID"])
            yield local


@pytest.fixture(scope="session")
def issue_token_app(stack: LocalStack) -> ModuleType:
    return importlib.import_module("issue_token.app")


@pytest.fixture(scope="session")
def process_payment_app(stack: LocalStack) -> ModuleType:
    return importlib.import_module("process_payment.app")


@pytest.fixture(scope="session")
def publish_jwks_app(stack: LocalStack) -> ModuleType:
    return importlib.import_module("publish_jwks.app")


def _invoker(module: ModuleType, function_name: str) -> Invoke:
    # The template's timeout: the payment path checks the time left before its rarer steps.
    timeout = int(load_template()["Resources"][function_name]["Properties"]["Timeout"])

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = module.lambda_handler(
            event, LambdaContext(function_name, 512, timeout)
        )
        return response

    return invoke


@pytest.fixture
def issue(issue_token_app: ModuleType) -> Invoke:
    return _invoker(issue_token_app, "IssueTokenFunction")


@pytest.fixture
def payments(process_payment_app: ModuleType) -> Invoke:
    return _invoker(process_payment_app, "ProcessPaymentFunction")


@pytest.fixture
def jwks(publish_jwks_app: ModuleType) -> Invoke:
    return _invoker(publish_jwks_app, "PublishJwksFunction")
