"""The sample card of the banner, the sample events and the tests: a Visa the sandbox approves."""

from __future__ import annotations

from typing import Any

SAMPLE_CARD: dict[str, Any] = {
    "card_number": "4242 4242 4242 4242",
    "exp_month": 12,
    "exp_year": 2030,
    "cvv": "123",
    "cardholder_name": "Ada Lovelace",
}
