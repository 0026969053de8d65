from __future__ import annotations

from datetime import UTC, datetime

import pytest

from card_tokens.cards import Card, luhn_valid, normalize_card_number, validate_card
from card_tokens.errors import (
    CardExpired,
    InvalidCardNumber,
    InvalidCvv,
    InvalidExpiry,
    InvalidRequest,
)
from tests.cards import VISA

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def card(**overrides: object) -> Card:
    fields: dict[str, object] = {**VISA, **overrides}
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
        "9999999999999995",  # passes Luhn, no brand
        "5555555555554444555",  # Mastercard is 16 digits only
    ],
)
def test_malformed_or_unknown_numbers_are_rejected(number: str) -> None:
    with pytest.raises(InvalidCardNumber) as raised:
        card(card_number=number)
    assert raised.value.field == "card_number"


@pytest.mark.parametrize("number", [4242424242424242, ["4242424242424242"], 4.2e15, True])
def test_a_card_number_that_is_not_a_string_is_rejected(number: object) -> None:
    with pytest.raises(InvalidCardNumber) as raised:
        normalize_card_number(number)
    assert raised.value.message == "card_number must be a string of digits."


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (
            "4242  4242 4242 4242",
            "card_number may hold only the digits 0-9, with a single space or hyphen between "
            "groups.",
        ),
        (
            "4242 4242 4242 4242 ",
            "card_number may hold only the digits 0-9, with a single "
            "space or hyphen between groups.",
        ),
        ("42424242424", "card_number must have 13 to 19 digits."),
        ("4" + "0" * 18 + "4", "card_number must have 13 to 19 digits."),
        (
            "9999999999999995",
            "card_number is not from a supported card brand (Visa, Mastercard, American "
            "Express, Discover, JCB, Diners Club or UnionPay).",
        ),
        ("3782 822463 1000", "card_number must have 15 digits for American Express."),
        ("4242 4242 4242 424", "card_number must have 13, 16 or 19 digits for Visa."),
        ("5555555555554444555", "card_number must have 16 digits for Mastercard."),
        ("6011 1111 1111 111", "card_number must have 16 to 19 digits for Discover."),
        ("4242 4242 4242 4241", "card_number fails the Luhn check: a digit is probably mistyped."),
    ],
)
def test_each_card_number_refusal_says_what_is_wrong_and_what_is_expected(
    number: str, message: str
) -> None:
    with pytest.raises(InvalidCardNumber) as raised:
        card(card_number=number)
    assert (raised.value.field, raised.value.message) == ("card_number", message)
    assert number.replace(" ", "") not in message


@pytest.mark.parametrize(
    ("field", "missing"),
    [
        ("card_number", None),
        ("card_number", ""),
        ("exp_month", None),
        ("exp_year", None),
        ("cvv", None),
        ("cvv", ""),
    ],
)
def test_a_missing_field_is_named_as_required(field: str, missing: object) -> None:
    # The handler passes document.get(field): an absent field and a null one both arrive as None
    with pytest.raises(InvalidRequest) as raised:
        card(**{field: missing})
    assert type(raised.value) is InvalidRequest
    assert raised.value.code == "invalid_request"
    assert (raised.value.field, raised.value.message) == (field, f"{field} is required.")


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
    ("month", "year", "field", "message"),
    [
        (13, 2030, "exp_month", "exp_month must be an integer from 1 to 12."),
        ("12", 2030, "exp_month", "exp_month must be an integer from 1 to 12."),
        (12, 30, "exp_year", "exp_year must be a four-digit integer, such as 2030."),
        (12, 2047, "exp_year", "exp_year must be at most 20 years from now."),
    ],
)
def test_each_expiry_refusal_names_its_field(
    month: object, year: object, field: str, message: str
) -> None:
    with pytest.raises(InvalidExpiry) as raised:
        card(exp_month=month, exp_year=year)
    assert (raised.value.field, raised.value.message) == (field, message)


def test_an_expired_month_of_this_year_blames_the_month() -> None:
    # 10/26 in November 2026: the month is what a person would fix
    with pytest.raises(CardExpired) as raised:
        card(exp_month=10, exp_year=2026)
    assert raised.value.field == "exp_month"
    assert raised.value.message == (
        "The card has expired: exp_month is before the current month of this year."
    )


def test_an_expired_year_blames_the_year() -> None:
    with pytest.raises(CardExpired) as raised:
        card(exp_month=12, exp_year=2025)
    assert raised.value.field == "exp_year"
    assert raised.value.message == "The card has expired: exp_year is in the past."


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


@pytest.mark.parametrize(
    ("number", "cvv", "message"),
    [
        ("378282246310005", "123", "cvv must be 4 digits for American Express."),
        ("378282246310005", "12a4", "cvv must be 4 digits for American Express."),
        ("4242424242424242", "1234", "cvv must be 3 digits for Visa."),
        ("5555555555554444", "12", "cvv must be 3 digits for Mastercard."),
    ],
)
def test_a_cvv_refusal_says_how_many_digits_the_brand_needs(
    number: str, cvv: str, message: str
) -> None:
    with pytest.raises(InvalidCvv) as raised:
        card(card_number=number, cvv=cvv)
    assert (raised.value.field, raised.value.message) == ("cvv", message)


@pytest.mark.parametrize(
    "name", ["Ada\u202eLovelace", "Ada\u200bLovelace", "Ada\nLovelace", "Ada\ue000", "A" * 101]
)
def test_cardholder_names_must_be_printable_text_of_at_most_100_characters(name: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        card(cardholder_name=name)
    assert raised.value.field == "cardholder_name"
    assert raised.value.message.startswith(
        "cardholder_name must be printable text of at most 100 characters"
    )


@pytest.mark.parametrize("name", ["", "José Müller-Łukasiewicz", "王小明", "O'Brien 🙂"])
def test_cardholder_names_in_any_script_are_accepted(name: str) -> None:
    assert card(cardholder_name=name).cardholder_name == name


def test_a_card_repr_shows_neither_number_nor_cvv() -> None:
    text = repr(card(cvv="987")) + str(card(cvv="987"))
    assert "4242424242424242" not in text
    assert "987" not in text
    assert "4242" in text  # last four is fine
