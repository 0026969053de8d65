from __future__ import annotations

from datetime import UTC, datetime

import pytest

from card_tokens.cards import Card, luhn_valid, normalize_card_number, validate_card
from card_tokens.errors import CardExpired, InvalidCardNumber, InvalidCvv, InvalidExpiry

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def card(**overrides: object) -> Card:
    fields: dict[str, object] = {
        "card_number": "4242 4242 4242 4242",
        "exp_month": 12,
        "exp_year": 2030,
        "cvv": "123",
        "cardholder_name": "Ada Lovelace",
    }
    fields.update(overrides)
    return validate_card(**fields, now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4242424242424242", "visa"),
        ("4242-4242-4242-4242", "visa"),
        ("4222222222222", "visa"),
        ("5555 5555 5555 4444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("3782 822463 10005", "amex"),
        ("6011111111111117", "discover"),
        ("3566002020360505", "jcb"),
        ("36227206271667", "diners"),
        ("6200000000000005", "unionpay"),
    ],
)
def test_known_test_numbers_validate_with_their_brand(number: str, brand: str) -> None:
    cvv = "1234" if brand == "amex" else "123"
    assert card(card_number=number, cvv=cvv).brand == brand


@pytest.mark.parametrize(
    "number",
    [
        "4242424242424241",  # Luhn
        "4242 4242 4242 424",  # too short for Visa (15)
        "378282246310005 ",  # trailing space
        "4242  4242 4242 4242",  # two separators
        "4242_4242_4242_4242",
        "+4242424242424242",
        "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢",  # Arabic-Indic digits
        "\uff14\uff12" * 8,  # fullwidth digits
        "4242\u00a04242\u00a04242\u00a04242",  # no-break spaces
        "¹²³⁴",
        "",
        "9999999999999995",  # passes Luhn, no brand
        "5555555555554444555",  # Mastercard is 16 digits only
    ],
)
def test_malformed_or_unknown_numbers_are_rejected(number: str) -> None:
    with pytest.raises(InvalidCardNumber) as raised:
        card(card_number=number)
    assert raised.value.field == "card_number"


@pytest.mark.parametrize("number", [4242424242424242, None, ["4242424242424242"], 4.2e15])
def test_a_card_number_that_is_not_a_string_is_rejected(number: object) -> None:
    with pytest.raises(InvalidCardNumber):
        normalize_card_number(number)


def test_luhn_reference_values() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_the_card_is_valid_through_the_last_second_of_its_expiry_month() -> None:
    last_second = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    assert (
        validate_card(
            card_number="4242424242424242", exp_month=11, exp_year=2026, cvv="123", now=last_second
        ).exp_month
        == 11
    )
    with pytest.raises(CardExpired):
        validate_card(
            card_number="4242424242424242",
            exp_month=11,
            exp_year=2026,
            cvv="123",
            now=datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC),
        )


@pytest.mark.parametrize(
    ("month", "year"),
    [
        (0, 2030),
        (13, 2030),
        ("12", 2030),
        (12, "2030"),
        (True, 2030),
        (12.0, 2030),
        (12, 30),
        (12, 2099),
    ],
)
def test_bad_expiry_values_are_rejected(month: object, year: object) -> None:
    with pytest.raises(InvalidExpiry):
        card(exp_month=month, exp_year=year)


@pytest.mark.parametrize(
    ("number", "cvv"),
    [
        ("4242424242424242", "1234"),
        ("378282246310005", "123"),
        ("4242424242424242", "12a"),
        ("4242424242424242", 123),
        ("4242424242424242", "١٢٣"),
    ],
)
def test_cvv_length_follows_the_brand(number: str, cvv: object) -> None:
    with pytest.raises(InvalidCvv):
        card(card_number=number, cvv=cvv)


def test_a_card_repr_shows_neither_number_nor_cvv() -> None:
    text = repr(card(cvv="987")) + str(card(cvv="987"))
    assert "4242424242424242" not in text
    assert "987" not in text
    assert "4242" in text  # last four is fine
