"""Every flow, success and each error path, with all output captured and scanned for secrets."""

from __future__ import annotations

import re

import pytest

from card_tokens.key_store import KEYS
from local.provision import LocalStack
from local.rotation import rotate
from tests.flows import (
    Invoke,
    body,
    everything_written,
    get_event,
    load_event,
    payment_event,
    token_event,
)

pytestmark = pytest.mark.logscan

CARDS = {
    "4242424242424242": "739",
    "378282246310005": "7391",
    "4000000000000002": "739",
    "4000000000009995": "739",
    "4000000000000119": "739",
    "5555555555554444": "739",
}


def run_every_flow(issue: Invoke, payments: Invoke, jwks: Invoke, stack: LocalStack) -> list[str]:
    """Returns the tokens and sealed blobs that were handed out, to scan for them too."""
    secrets: list[str] = []
    for number, cvv in CARDS.items():
        spaced = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        response = issue(token_event(card_number=spaced, cvv=cvv, cardholder_name="Ada Scan"))
        assert response["statusCode"] == 201, response["body"]
        token = body(response)["token"]
        secrets.extend([token, *token.split(".")[1:]])
        first = payments(payment_event(token, idempotency_key=f"scan-{number}"))
        payments(payment_event(token, idempotency_key=f"scan-{number}"))  # idempotent replay
        payments(payment_event(token, idempotency_key=f"scan-{number}", amount=7))  # 422
        payments(payment_event(token, amount=8))  # reuse: 409 (or 502 again for 0119)
        payments(payment_event(token[:-3] + "AAA"))  # tampered: 401
        if first["statusCode"] == 201:
            payments(get_event(body(first)["payment_id"]))
    for bad in (
        {"card_number": "4242424242424241", "cvv": "739"},
        {"card_number": "4242424242424242", "cvv": "73"},
        {"card_number": "4242424242424242", "exp_year": 2001},
        {"card_number": "4242424242424242", "4242424242424242": "739"},
    ):
        issue(token_event(**bad))
    not_json = load_event("issue_token.json")
    not_json["body"] = '{"card_number": "4242424242424242", "cvv": "739",'
    issue(not_json)
    payments(get_event("pay_unknown"))
    jwks(load_event("jwks.json"))
    rotate(stack.environment["SIGNING_KEY_SECRET_ID"])
    KEYS.reset()  # the rotation changed the keys: nothing stale for other tests
    return secrets


def test_no_card_data_token_or_key_reaches_any_output(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    issue: Invoke,
    payments: Invoke,
    jwks: Invoke,
    stack: LocalStack,
) -> None:
    # Given every flow, success and each error path, has run with all output captured
    with everything_written(capsys, caplog) as outputs:
        handed_out = run_every_flow(issue, payments, jwks, stack)
    out = "\n".join(outputs)
    # Then the scan saw the logs (so it can fail) ...
    for line in ("token issued", "payment authorized", "token rejected", "request refused"):
        assert line in out, f"the scan did not see {line!r}: is output captured?"
    # ... and they hold no card number, CVV, name, token, sealed data or key material
    for number, cvv in CARDS.items():
        assert number not in out
        assert " ".join(number[i : i + 4] for i in range(0, len(number), 4)) not in out
        assert not re.search(rf"cvv\W{{0,6}}{cvv}", out, re.IGNORECASE)
    assert "Ada Scan" not in out
    for secret in handed_out:
        assert secret not in out
    assert "PRIVATE KEY" not in out
    assert '"d":' not in out
