"""One local stack for all e2e tests; stopped with Ctrl-C at the end, its output scanned."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.stack import curl_example
from tests.e2e.stack_process import (
    LocalStack,
    card_data_leaks,
    free_port,
    start_stack,
    wait_until_serving,
)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log_path = tmp_path_factory.mktemp("local-stack") / "stack.log"
    port, moto_port = free_port(), free_port()
    stack = LocalStack(start_stack(port, moto_port, log_path), port, moto_port, log_path)
    try:
        wait_until_serving(stack)
        yield stack
    finally:
        exit_code = stack.stop()

    # Then: Ctrl-C stops it cleanly, and nothing it printed holds card data or a token.
    assert exit_code == 0, f"the local stack exited with {exit_code}:\n{stack.log()[-4000:]}"
    # The banner's curl example is the one place a (test) card number is printed on purpose.
    output = stack.log().replace(curl_example(stack.base_url), "")
    leaks = card_data_leaks(output, stack.issued_tokens)
    assert not leaks, f"the local stack's output holds {leaks}; see {log_path}"
