"""One stack for all e2e tests: a deployed one when AWS_SAM_STACK_NAME is set, else the local one.

Locally the stack is started in a subprocess, stopped with Ctrl-C at the end, and its output
scanned. Against a deployed stack (the pipeline's staging), the URL and names come from the
stack's CloudFormation Outputs and the /payments requests are SigV4-signed; the tests that need
something only the local stack has are skipped, each saying what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack_process import (
    DeployedStack,
    RunningLocalStack,
    StackUnderTest,
    local_only_reason,
)

DEPLOYED_STACK_NAME = os.environ.get("AWS_SAM_STACK_NAME", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against a deployed stack, skip (before any fixture starts) what only the local one has."""
    if not DEPLOYED_STACK_NAME:
        return
    here = Path(__file__).parent
    for item in items:
        if item.path.parent != here:
            continue
        reason = local_only_reason(item.path.name, getattr(item, "originalname", item.name))
        if reason:
            message = f"local stack only: {reason} (AWS_SAM_STACK_NAME={DEPLOYED_STACK_NAME})"
            item.add_marker(pytest.mark.skip(reason=message))


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUnderTest]:
    """The stack under test; the name stays `local_stack` because that is where tests run most."""
    if DEPLOYED_STACK_NAME:
        yield DeployedStack.from_cloudformation(DEPLOYED_STACK_NAME)
        return

    yield from _running(tmp_path_factory, merchants=False)


@pytest.fixture(scope="session")
def merchant_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalStack]:
    """The local stack as `make run` starts it: a demo merchant, unsigned /payments are its."""
    yield from _running(tmp_path_factory, merchants=True)


def _running(
    tmp_path_factory: pytest.TempPathFactory, *, merchants: bool
) -> Iterator[RunningLocalStack]:
    log_path = tmp_path_factory.mktemp("local-stack") / "stack.log"
    stack = RunningLocalStack.start(log_path, merchants=merchants)
    try:
        yield stack
    finally:
        stack.stop()
    # Then: Ctrl-C stopped it cleanly, and nothing it printed holds card data or a token.
    stack.stop_and_scan()
