"""The scan that the local stack's output is checked with can fail (and names no values)."""

from __future__ import annotations

import pytest

from tests.cards import CARDHOLDER
from tests.e2e.stack_process import card_data_leaks

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJhYmMifQ.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    ("output", "finding"),
    [
        ('{"message": "card 4242424242424242"}', "PAN ending 4242"),
        ("card_number=4242 4242 4242 4242", "PAN ending 4242"),
        ("4000-0000-0000-0002", "PAN ending 0002"),
        ('{"cvv": "123"}', "a CVV value"),
        ("CVV=1234", "a CVV value"),
        (f"name {CARDHOLDER}", "the cardholder name"),
        (f"token {TOKEN}", "issued token #0"),
        ("claims eyJqdGkiOiJhYmMifQ only", "issued token #0"),
    ],
)
def test_log_scan_finds_card_data_and_tokens(output: str, finding: str) -> None:
    assert finding in card_data_leaks(output, [TOKEN])


def test_log_scan_passes_ordinary_log_lines() -> None:
    output = 'POST /tokens 201 12.3ms abc==\n{"last4": "4242", "brand": "visa", "status": 201}'

    assert card_data_leaks(output, [TOKEN]) == []
