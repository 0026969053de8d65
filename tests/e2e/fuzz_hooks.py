"""Schemathesis hooks for tests/e2e/test_fuzz_contract.py: positive cards obey what no schema says.

openapi.yaml states every rule of POST /tokens that a JSON Schema can state (its patterns agree
with the code: tests/template/test_openapi_patterns.py). A few rules no schema can state, and its
descriptions list them: the Luhn check digit, the brand's prefixes and lengths, the CVV's length
for the brand, and an expiry that is neither past nor more than 20 years ahead. A schema-valid
card drawn at random breaks one of them almost always, so every positive POST /tokens would be a
400, positive_data_acceptance would fail on what the contract already says, and the stateful
phase would never get a token to pay with.

So this hook moves a positive POST /tokens body onto a real card, and changes nothing else:
the number keeps its length and its spaces and hyphens where they were (only its leading digits
become a brand's prefix and its last the Luhn digit), the CVV gets the brand's length from its
own digits, and a year out of the window is moved into it. The values stay schema-valid, so the
case stays positive. Negative cases are left alone. The rules themselves come from the layer
(card_tokens.cards), not from a copy.

Loaded by the test through SCHEMATHESIS_HOOKS (a file path); to use it by hand:
    SCHEMATHESIS_HOOKS=tests/e2e/fuzz_hooks.py st --config-file tests/e2e/schemathesis.toml run ...
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis.core.parameters import ParameterLocation

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "layers" / "card_tokens"))

# The layer is put on the path just above.
from card_tokens.cards import (
    BRANDS,
    MAX_EXPIRY_YEARS_AHEAD,
    Brand,
    detect_brand,
    luhn_valid,
)
from card_tokens.errors import InvalidRequest

# The sandbox processor fails this test card every time (502): a fuzzer drawing it would report
# a server error the contract documents.
PROCESSOR_FAILURE_PAN = "4000000000000119"
SEPARATORS = " -"


def with_luhn_digit(body: str) -> str:
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))


def prefixes_of(brand: Brand) -> list[str]:
    """The lowest and the highest leading digits of each of the brand's ranges."""
    return sorted({str(edge) for low, high in brand.prefixes for edge in (low, high)})


def real_number(digits: str) -> tuple[str, Brand]:
    """A number as long as `digits`, from its digits, with a brand's prefix and a Luhn digit."""
    candidates = [
        prefix for brand in BRANDS if len(digits) in brand.lengths for prefix in prefixes_of(brand)
    ]
    start = sum(map(int, digits)) % len(candidates)  # the drawn digits choose: variety
    for prefix in candidates[start:] + candidates[:start]:
        pan = with_luhn_digit(prefix + digits[len(prefix) : -1])
        if pan == PROCESSOR_FAILURE_PAN:
            continue
        try:
            return pan, detect_brand(pan)
        except InvalidRequest:
            continue  # a prefix inside another brand's range, with other lengths
    raise AssertionError(f"no brand takes {len(digits)} digits")  # 13 to 19 always have one


def real_card(body: dict[str, Any], now: datetime) -> None:
    number = body["card_number"]
    pan, brand = real_number("".join(c for c in number if c not in SEPARATORS))
    digits = iter(pan)
    body["card_number"] = "".join(c if c in SEPARATORS else next(digits) for c in number)
    body["cvv"] = (body["cvv"] * brand.cvv_length)[: brand.cvv_length]
    month, year = body["exp_month"], body["exp_year"]
    if not (now.year, now.month) <= (year, month) or year > now.year + MAX_EXPIRY_YEARS_AHEAD:
        body["exp_year"] = now.year + 1 + year % MAX_EXPIRY_YEARS_AHEAD


def body_is_positive(case: Any) -> bool:
    meta = case.meta
    if meta is None:
        return False
    component = meta.components.get(ParameterLocation.BODY)
    mode = component.mode if component is not None else meta.generation.mode
    return bool(mode.is_positive)


def is_card_body(body: object) -> bool:
    if not isinstance(body, dict):
        return False
    shapes = {"card_number": str, "cvv": str, "exp_month": int, "exp_year": int}
    return all(type(body.get(field)) is kind for field, kind in shapes.items())


@schemathesis.hook("map_case").apply_to(method="POST", path="/tokens")
def real_cards_for_positive_token_requests(context: Any, case: Any) -> Any:
    if body_is_positive(case) and is_card_body(case.body):
        body = dict(case.body)
        real_card(body, datetime.now(UTC))
        case.body = body
    return case
