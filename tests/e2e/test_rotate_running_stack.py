"""`make run`, then `make rotate`: two keys in the JWKS, and an earlier token still pays."""

from __future__ import annotations

import sys
import time

from tests.e2e.stack_process import RunningLocalStack
from tests.support import run_captured


def jwks_kids(local_stack: RunningLocalStack) -> list[str]:
    reply = local_stack.api.request("GET", "/.well-known/jwks.json")
    assert reply.status == 200
    return [key["kid"] for key in reply.json()["keys"]]


def test_make_rotate_publishes_a_second_key_and_earlier_tokens_still_pay(
    local_stack: RunningLocalStack,
) -> None:
    # Given a token issued before the rotation
    token = local_stack.issue_token()
    kids_before = jwks_kids(local_stack)
    # When the running stack's key is rotated the way `make rotate` does it
    rotated = run_captured(
        [sys.executable, "-m", "local.rotation", "--moto-port", str(local_stack.moto_port)]
    )
    assert rotated.returncode == 0, rotated.stderr
    # Then within the local key cache (5 s) the JWKS lists the old and the new key
    deadline = time.monotonic() + 15
    kids = jwks_kids(local_stack)
    while len(kids) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        kids = jwks_kids(local_stack)
    assert len(kids) == 2
    assert set(kids_before) < set(kids)
    # and the earlier token still pays, and new tokens too
    assert local_stack.pay(token).status == 201
    assert local_stack.pay(local_stack.issue_token()).status == 201


def test_make_rotate_without_a_running_stack_says_so() -> None:
    result = run_captured([sys.executable, "-m", "local.rotation", "--moto-port", "9"], timeout=60)
    assert result.returncode == 2
    assert "make run" in result.stderr
