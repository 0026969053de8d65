"""Every security test runs through the real handlers with all output captured and scanned."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from card_tokens.key_store import KEYS
from tests.flows import everything_written
from tests.security.merchant_registry import registry_fixture  # noqa: F401 - `registry`

# Card numbers and CVV markers used anywhere in tests/security.
SENSITIVE = re.compile(
    r"4242424242424242|4242 4242 4242 4242|378282246310005|5555555555554444|cvv\W{0,6}\d{3,4}",
    re.IGNORECASE,
)
# Compact JWS: three base64url runs; anything this long in output is a leaked token.
TOKEN_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}")


@pytest.fixture(autouse=True)
def _scan_output(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Fails the test if its output holds a card number, a CVV or a token."""
    # Forgeries are signed with the secret's current key: start from what the secret says now.
    KEYS.reset()
    with everything_written(capsys, caplog) as outputs:
        yield
    out = "\n".join(outputs)
    assert not SENSITIVE.search(out), "card data reached the output"
    assert not TOKEN_SHAPED.search(out), "a token reached the output"
