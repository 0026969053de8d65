"""The checkout page on the local stack: its files and headers, then Chromium through four cards."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.stack_process import RunningLocalStack
from tests.support import REPO_ROOT
from web.checkout.page import CONTENT_SECURITY_POLICY, PAGE_FILES

BROWSER_TESTS = REPO_ROOT / "tests" / "browser"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "checkout"
# Debian's Chromium, or the browser CHROMIUM names (the Makefile and the node script agree).
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCENARIOS = (
    "approved",
    "declined",
    "invalidCardNumber",
    "signedPaymentsOnly",
    "tokenExpires",
    "expiredCard",
    "amexNeedsFourDigits",
    "processorFailure",
    "amountInMajorUnits",
)
SCREENSHOTS = (
    "approved.png",
    "declined.png",
    "invalid-card.png",
    "signed-payments-only.png",
    "token-expired.png",
    "expired-card.png",
    "amex.png",
    "processor-failure.png",
    "amount-major-units.png",
)
BROWSER_SECONDS = 120


@pytest.mark.parametrize("path", sorted(PAGE_FILES))
def test_each_page_file_is_served_with_its_type_and_the_security_headers(
    local_stack: RunningLocalStack, path: str
) -> None:
    reply = local_stack.api.request("GET", path)

    assert reply.status == 200
    assert reply.headers["content-type"] == PAGE_FILES[path][1]
    assert reply.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in reply.headers["content-security-policy"]
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert reply.headers["cache-control"] == "no-store"
    assert reply.body == (REPO_ROOT / "web" / "checkout" / PAGE_FILES[path][0]).read_bytes()


def test_the_page_carries_the_demo_merchants_publishable_key_from_its_configuration(
    merchant_stack: RunningLocalStack, local_stack: RunningLocalStack
) -> None:
    slot = '<meta name="card-tokens-publishable-key" content="{}">'

    served = merchant_stack.api.request("GET", "/").body.decode()
    single_caller = local_stack.api.request("GET", "/").body.decode()

    assert merchant_stack.publishable_key
    assert slot.format(merchant_stack.publishable_key) in served
    assert slot.format("") in single_caller


def missing_browser_dependencies() -> list[str]:
    missing = []
    if shutil.which("node") is None:
        missing.append("node (apt-get install nodejs)")
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if not (BROWSER_TESTS / "node_modules" / "playwright-core" / "package.json").is_file():
        missing.append(f"playwright-core in {BROWSER_TESTS.relative_to(REPO_ROOT)}/node_modules")
    return missing


def test_chromium_pays_declines_and_shows_field_errors_without_leaking_the_card(
    merchant_stack: RunningLocalStack,
) -> None:
    # Given Debian's Chromium and playwright-core (`make browser-deps`): a failure, not a skip
    missing = missing_browser_dependencies()
    if missing:
        pytest.fail("the browser test needs " + ", ".join(missing) + ": run `make browser-deps`")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)

    # When tests/browser/checkout.mjs drives the page: approved, declined, bad number, expired
    # card (each tokenized with the demo merchant's key, from the page's configuration), a
    # deployed stack's 404 on unsigned payments (and its 403), a token that runs out, an
    # Amex code of 3 digits, the processor-failure card, and amounts in major units
    result = subprocess.run(
        [
            "node",
            str(BROWSER_TESTS / "checkout.mjs"),
            "--base-url",
            merchant_stack.base_url,
            "--out",
            str(ARTIFACTS),
        ],
        cwd=BROWSER_TESTS,
        capture_output=True,
        text=True,
        timeout=BROWSER_SECONDS,
        check=False,
    )

    # Then every scenario passed (it checks storage, URL, console and requests for card data)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"the browser scenarios failed (see {ARTIFACTS}):\n{output}"
    for scenario in SCENARIOS:
        assert f"ok    {scenario}" in result.stdout
    # And a screenshot of each is kept as a test artifact
    for name in SCREENSHOTS:
        screenshot = ARTIFACTS / name
        assert screenshot.is_file(), f"no screenshot {screenshot}"
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
