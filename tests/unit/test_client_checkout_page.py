"""card_tokens_client.checkout_page: the publishable key read back from the checkout page the
stack serves (rendered here by the page function itself; fetched over HTTP in tests/e2e)."""

from __future__ import annotations

import io
import urllib.error
from email.message import Message
from typing import Any

import pytest

from card_tokens_client.checkout_page import page_publishable_key
from web.checkout.page import page_response

KEY = "pk_abcdefghijklmnopqrstuvwx"
URL = "http://127.0.0.1:3000"


class FakePageOpener:
    """urlopen for one page: answers `page` (or raises it), and records the URL asked."""

    def __init__(self, page: bytes | Exception) -> None:
        self.page = page
        self.asked: list[tuple[str, float]] = []

    def __call__(self, url: str, timeout: float) -> Any:
        self.asked.append((url, timeout))
        if isinstance(self.page, Exception):
            raise self.page
        return io.BytesIO(self.page)


def served_page(publishable_key: str | None) -> bytes:
    found = page_response("/", publishable_key)
    assert found is not None
    return found[2]


@pytest.mark.parametrize("base_url", [URL, URL + "/"])
def test_the_key_is_read_from_the_page_the_stack_serves(base_url: str) -> None:
    opener = FakePageOpener(served_page(KEY))

    assert page_publishable_key(base_url, 2.0, open_url=opener) == KEY
    assert opener.asked == [(URL + "/", 2.0)]


@pytest.mark.parametrize(
    "page",
    [
        served_page(None),  # a single-caller stack's page: an empty slot
        b'<meta name="card-tokens-publishable-key" content="pk_short">',
        b'<meta name="other" content="pk_abcdefghijklmnopqrstuvwx">',
        urllib.error.HTTPError(URL + "/", 404, "Not Found", Message(), io.BytesIO(b"")),
        urllib.error.URLError(ConnectionRefusedError()),
        TimeoutError(),
    ],
    ids=["empty-slot", "malformed-key", "other-tag", "not-found", "refused", "timeout"],
)
def test_no_key_without_a_page_that_holds_one(page: bytes | Exception) -> None:
    assert page_publishable_key(URL, open_url=FakePageOpener(page)) is None
