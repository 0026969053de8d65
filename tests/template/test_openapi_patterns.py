"""Every pattern, enum and bound of openapi.yaml's requests agrees with the code that checks it.

Schemathesis (`make fuzz`) takes openapi.yaml at its word: a value the schema allows and the code
refuses fails its positive_data_acceptance check, a value the schema refuses and the code takes
fails negative_data_rejection. So each request pattern is read here the way schemathesis reads it
(jsonschema-rs), over values the code accepts and values it refuses, and then over random ones.
The rules no schema can state (Luhn, the brand's lengths, the CVV's length for the brand, an
expiry in the past or too far ahead) are in the fields' descriptions, and are not patterns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from card_tokens.cards import (
    BRANDS,
    CARD_NUMBER_PATTERN,
    MAX_CARDHOLDER_NAME,
    MAX_EXPIRY_YEARS_AHEAD,
    check_cardholder_name,
    check_cvv,
    normalize_card_number,
)
from card_tokens.errors import InvalidRequest
from card_tokens.payments import _PAYMENT_ID
from card_tokens.printable import printable_text_pattern
from card_tokens.request_body import (
    MAX_AMOUNT,
    MAX_REFERENCE,
    PAYMENT_REQUEST_FIELDS,
    SUPPORTED_CURRENCIES,
    TOKEN_REQUEST_FIELDS,
    idempotency_key,
    parse_payment_request,
)

SPEC: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "openapi.yaml").read_text(encoding="utf-8")
)
SCHEMAS = SPEC["components"]["schemas"]
TOKEN_REQUEST = SCHEMAS["TokenRequest"]["properties"]
PAYMENT_REQUEST = SCHEMAS["PaymentRequest"]["properties"]
VISA, AMEX = (next(brand for brand in BRANDS if brand.name == name) for name in ("visa", "amex"))


def request_schemas() -> dict[str, dict[str, Any]]:
    """Every request value's schema that has a pattern: body fields, headers, path parameters."""
    found = {}
    for name in ("TokenRequest", "PaymentRequest"):
        for field, schema in SCHEMAS[name]["properties"].items():
            if "pattern" in schema:
                found[field] = schema
    for item in SPEC["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if "pattern" in parameter["schema"]:
                    found[parameter["name"]] = parameter["schema"]
    return found


def schema_accepts(schema: dict[str, Any], value: str) -> bool:
    """As schemathesis's validator reads it (nullable is OpenAPI's, not JSON Schema's)."""
    plain = {key: value for key, value in schema.items() if key not in ("nullable", "example")}
    return bool(jsonschema_rs.validator_for(plain).is_valid(value))


def accepts(check: Callable[[str], object]) -> Callable[[str], bool]:
    def run(value: str) -> bool:
        try:
            check(value)
        except InvalidRequest:
            return False
        return True

    return run


def any_brand_cvv(value: str) -> None:
    """The pattern says 3 or 4 digits; which of the two is the brand's rule (description)."""
    try:
        check_cvv(value, VISA)
    except InvalidRequest:
        check_cvv(value, AMEX)


GOOD_PAYMENT = {"token": "a.b.c", "amount": 1999, "currency": "EUR"}

# field → (the code's check, values both accept, values both refuse)
SAMPLES: dict[str, tuple[Callable[[str], bool], list[str], list[str]]] = {
    "card_number": (
        accepts(normalize_card_number),
        [
            "4242424242424242",
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
            "3782 822463 10005",
            "4222222222222",
            "4" * 19,
            "1 2 3 4 5 6 7 8 9 0 1 2 3",
        ],
        [
            "",
            "424242424242",  # 12 digits
            "4" * 20,
            "4242  4242 4242 4242",
            "4242 -4242 4242 4242",
            "4242 4242 4242 4242 ",
            " 4242424242424242",
            "4242_4242_4242_4242",
            "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢",  # Arabic-Indic digits
            "\uff14\uff12" * 8,  # fullwidth digits
            "4242\u00a04242\u00a04242\u00a04242",
            "4242424242424242\n",
        ],
    ),
    "cvv": (
        accepts(any_brand_cvv),
        ["123", "1234", "000"],
        ["", "12", "12345", "12a", "١٢٣", " 123", "123\n"],
    ),
    "cardholder_name": (
        accepts(check_cardholder_name),
        [
            "",
            "Ada Lovelace",
            "José Müller-Łukasiewicz",
            "王小明",
            "O'Brien 🙂",
            "A" * 100,
            "\U0003ffff",
        ],
        [
            "A" * 101,
            "Ada\u202eLovelace",  # right-to-left override
            "Ada\u200bLovelace",  # zero-width space
            "Ada\nLovelace",
            "Ada\tLovelace",
            "\x7f",
            "\u00a0",
            "\ue000",
            "\U000e0041",  # tag character
            "\U00100000",  # supplementary private use
            "Ada Lovelace\n",
        ],
    ),
    "reference": (
        accepts(lambda value: parse_payment_request({**GOOD_PAYMENT, "reference": value})),
        ["order-1", "x" * 64, "注文 42", "Bestellung \u2013 Müller", "🙂", "\U0003ffff"],
        [
            "",
            "x" * 65,
            "nul\x00",
            "bell\x07",
            "\x85",
            "a\u2028b",
            "a\ufeff",
            "\U000f0000",
            "order-1\n",
        ],
    ),
    "Idempotency-Key": (
        accepts(lambda value: idempotency_key({"headers": {"idempotency-key": value}})),
        ["k", "a" * 255, "~!#", "4c0ffee0-0000-4000-8000-000000000000"],
        ["", "a" * 256, "has space", "tab\t", "é", "k\n"],
    ),
    "payment_id": (
        lambda value: _PAYMENT_ID.fullmatch(value) is not None,
        ["pay_" + "a" * 24, "pay_" + "a2b3c4d5e6f7" * 2],
        ["pay_" + "a" * 23, "pay_" + "A" * 24, "pay_" + "1" * 24, "x", "pay_" + "a" * 24 + "\n"],
    ),
}


def test_every_request_pattern_has_samples_here() -> None:
    assert set(request_schemas()) == set(SAMPLES)


@pytest.mark.parametrize("field", sorted(SAMPLES))
def test_each_pattern_accepts_what_the_code_accepts_and_refuses_what_it_refuses(
    field: str,
) -> None:
    schema = request_schemas()[field]
    code_accepts, accepted, refused = SAMPLES[field]
    for value in accepted:
        assert (schema_accepts(schema, value), code_accepts(value)) == (True, True), value
    for value in refused:
        assert (schema_accepts(schema, value), code_accepts(value)) == (False, False), value


@pytest.mark.parametrize("field", ["cardholder_name", "reference"])
def test_a_lone_surrogate_no_pattern_can_name_is_refused_by_the_code(field: str) -> None:
    code_accepts = SAMPLES[field][0]
    assert not code_accepts("lone \ud800 surrogate")


@pytest.mark.parametrize("field", ["card_number", "cardholder_name", "reference"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_values_get_the_same_answer_from_the_pattern_and_the_code(
    field: str, data: st.DataObject
) -> None:
    schema = request_schemas()[field]
    value = data.draw(
        st.one_of(
            st.from_regex(schema["pattern"], fullmatch=True),
            st.text(max_size=40),
            st.text(alphabet="0123456789 -", max_size=40),
        )
    )
    assert schema_accepts(schema, value) == SAMPLES[field][0](value)


def test_the_patterns_are_the_codes_own() -> None:
    assert TOKEN_REQUEST["card_number"]["pattern"] == CARD_NUMBER_PATTERN
    assert TOKEN_REQUEST["cardholder_name"]["pattern"] == printable_text_pattern(
        0, MAX_CARDHOLDER_NAME
    )
    assert PAYMENT_REQUEST["reference"]["pattern"] == printable_text_pattern(1, MAX_REFERENCE)
    assert request_schemas()["payment_id"]["pattern"] == f"^{_PAYMENT_ID.pattern}$"


def test_fields_enums_and_bounds_are_the_codes() -> None:
    assert tuple(TOKEN_REQUEST) == TOKEN_REQUEST_FIELDS
    assert tuple(PAYMENT_REQUEST) == PAYMENT_REQUEST_FIELDS
    assert SCHEMAS["TokenRequest"]["required"] == ["card_number", "exp_month", "exp_year", "cvv"]
    assert SCHEMAS["PaymentRequest"]["required"] == ["token", "amount", "currency"]
    assert set(PAYMENT_REQUEST["currency"]["enum"]) == SUPPORTED_CURRENCIES
    assert set(SCHEMAS["Payment"]["properties"]["currency"]["enum"]) == SUPPORTED_CURRENCIES
    assert set(SCHEMAS["Brand"]["enum"]) == {brand.name for brand in BRANDS}
    assert (PAYMENT_REQUEST["amount"]["minimum"], PAYMENT_REQUEST["amount"]["maximum"]) == (
        1,
        MAX_AMOUNT,
    )
    # The free-text lengths are in their patterns (printable_text_pattern says why)
    assert "maxLength" not in PAYMENT_REQUEST["reference"]
    assert "maxLength" not in TOKEN_REQUEST["cardholder_name"]
    assert (TOKEN_REQUEST["exp_month"]["minimum"], TOKEN_REQUEST["exp_month"]["maximum"]) == (1, 12)
    assert f"at most {MAX_EXPIRY_YEARS_AHEAD} years" in TOKEN_REQUEST["exp_year"]["description"]
