"""Card validation: number syntax, Luhn, brand and its lengths, expiry, CVV."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from card_tokens.errors import (
    CardExpired,
    InvalidCardNumber,
    InvalidCvv,
    InvalidExpiry,
    InvalidRequest,
)
from card_tokens.printable import is_printable_text

# ASCII digits only ([0-9], never \d, which matches Arabic-Indic or fullwidth digits); one space
# or hyphen may separate digit groups, nothing else.
_CARD_NUMBER = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
MIN_CARD_DIGITS, MAX_CARD_DIGITS = 13, 19  # the shortest and longest of every brand's lengths
# The same two rules (shape, then digit count) as one pattern: openapi.yaml's card_number.
CARD_NUMBER_PATTERN = r"^[0-9](?:[ -]?[0-9]){12,18}$"
_CVV = re.compile(r"[0-9]+")
MAX_EXPIRY_YEARS_AHEAD = 20
MAX_CARDHOLDER_NAME = 100


@dataclass(frozen=True)
class Brand:
    name: str
    display_name: str
    prefixes: tuple[tuple[int, int], ...]  # inclusive ranges of leading digits
    lengths: frozenset[int]
    cvv_length: int = 3

    def matches(self, pan: str) -> bool:
        for low, high in self.prefixes:
            width = len(str(low))
            if low <= int(pan[:width]) <= high:
                return True
        return False


# Most specific first: Discover's 622126-622925 sits inside UnionPay's 62.
BRANDS: tuple[Brand, ...] = (
    Brand("amex", "American Express", ((34, 34), (37, 37)), frozenset({15}), cvv_length=4),
    Brand("visa", "Visa", ((4, 4),), frozenset({13, 16, 19})),
    Brand("mastercard", "Mastercard", ((51, 55), (2221, 2720)), frozenset({16})),
    Brand(
        "discover",
        "Discover",
        ((6011, 6011), (644, 649), (65, 65), (622126, 622925)),
        frozenset(range(16, 20)),
    ),
    Brand("jcb", "JCB", ((3528, 3589),), frozenset(range(16, 20))),
    Brand("diners", "Diners Club", ((300, 305), (36, 36), (38, 39)), frozenset(range(14, 20))),
    Brand("unionpay", "UnionPay", ((62, 62),), frozenset(range(16, 20))),
)
BRAND_LIST = "Visa, Mastercard, American Express, Discover, JCB, Diners Club or UnionPay"


@dataclass(frozen=True, repr=False)
class Card:
    """A validated card. Its repr never shows the number or the CVV."""

    pan: str
    exp_month: int
    exp_year: int
    cvv: str
    brand: str
    cardholder_name: str | None = None

    @property
    def last4(self) -> str:
        return self.pan[-4:]

    def __repr__(self) -> str:
        return f"Card(brand={self.brand!r}, last4={self.last4!r})"


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _required(value: object, field: str) -> None:
    """Absent, null or "" is `invalid_request`: "<field> is required."."""
    if value is None or value == "":
        raise InvalidRequest(f"{field} is required.", field=field)


def length_phrase(lengths: frozenset[int]) -> str:
    """{16} → "16", {13, 16, 19} → "13, 16 or 19", {16..19} → "16 to 19"."""
    ordered = sorted(lengths)
    if len(ordered) == 1:
        return str(ordered[0])
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]} to {ordered[-1]}"
    return ", ".join(map(str, ordered[:-1])) + f" or {ordered[-1]}"


def normalize_card_number(raw: object) -> str:
    """The bare digits of a card number, or InvalidCardNumber saying what is wrong with it."""
    _required(raw, "card_number")
    if not isinstance(raw, str):
        raise InvalidCardNumber("card_number must be a string of digits.", field="card_number")
    if not _CARD_NUMBER.fullmatch(raw):
        raise InvalidCardNumber(
            "card_number may hold only the digits 0-9, with a single space or hyphen between "
            "groups.",
            field="card_number",
        )
    pan = raw.replace(" ", "").replace("-", "")
    if not MIN_CARD_DIGITS <= len(pan) <= MAX_CARD_DIGITS:
        raise InvalidCardNumber(
            f"card_number must have {MIN_CARD_DIGITS} to {MAX_CARD_DIGITS} digits.",
            field="card_number",
        )
    return pan


def detect_brand(pan: str) -> Brand:
    """The brand of a normalized number whose length and Luhn check digit fit it."""
    brand = next((brand for brand in BRANDS if brand.matches(pan)), None)
    if brand is None:
        raise InvalidCardNumber(
            f"card_number is not from a supported card brand ({BRAND_LIST}).",
            field="card_number",
        )
    if len(pan) not in brand.lengths:
        raise InvalidCardNumber(
            f"card_number must have {length_phrase(brand.lengths)} digits"
            f" for {brand.display_name}.",
            field="card_number",
        )
    if not luhn_valid(pan):
        raise InvalidCardNumber(
            "card_number fails the Luhn check: a digit is probably mistyped.",
            field="card_number",
        )
    return brand


def _strict_int(value: object, field: str, expected: str) -> int:
    _required(value, field)
    # bool is an int in Python; JSON true is not a month.
    if type(value) is not int:
        raise InvalidExpiry(f"{field} must be {expected}.", field=field)
    return value


def check_expiry(exp_month: object, exp_year: object, now: datetime) -> tuple[int, int]:
    """The card is good through the last second of its expiry month (UTC)."""
    month_rule = "an integer from 1 to 12"
    year_rule = "a four-digit integer, such as 2030"
    month = _strict_int(exp_month, "exp_month", month_rule)
    year = _strict_int(exp_year, "exp_year", year_rule)
    if not 1 <= month <= 12:
        raise InvalidExpiry(f"exp_month must be {month_rule}.", field="exp_month")
    if not 1000 <= year <= 9999:
        raise InvalidExpiry(f"exp_year must be {year_rule}.", field="exp_year")
    if year > now.year + MAX_EXPIRY_YEARS_AHEAD:
        raise InvalidExpiry(
            f"exp_year must be at most {MAX_EXPIRY_YEARS_AHEAD} years from now.", field="exp_year"
        )
    last_day = calendar.monthrange(year, month)[1]
    end_of_month = datetime(year, month, last_day, 23, 59, 59, tzinfo=UTC)
    if now > end_of_month:
        # Blame the field a person would fix: the year when it is past, else the month.
        if year < now.year:
            raise CardExpired("The card has expired: exp_year is in the past.", field="exp_year")
        raise CardExpired(
            "The card has expired: exp_month is before the current month of this year.",
            field="exp_month",
        )
    return month, year


def check_cvv(raw: object, brand: Brand) -> str:
    _required(raw, "cvv")
    if not isinstance(raw, str) or not _CVV.fullmatch(raw) or len(raw) != brand.cvv_length:
        raise InvalidCvv(
            f"cvv must be {brand.cvv_length} digits for {brand.display_name}.", field="cvv"
        )
    return raw


def check_cardholder_name(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > MAX_CARDHOLDER_NAME or not is_printable_text(raw):
        raise InvalidRequest(
            f"cardholder_name must be printable text of at most {MAX_CARDHOLDER_NAME} characters "
            "(no control, formatting or private-use characters).",
            field="cardholder_name",
        )
    return raw


def validate_card(
    *,
    card_number: object,
    exp_month: object,
    exp_year: object,
    cvv: object,
    cardholder_name: object = None,
    now: datetime,
) -> Card:
    """A Card, or the first InvalidRequest in field order."""
    pan = normalize_card_number(card_number)
    brand = detect_brand(pan)
    month, year = check_expiry(exp_month, exp_year, now)
    return Card(
        pan=pan,
        exp_month=month,
        exp_year=year,
        cvv=check_cvv(cvv, brand),
        brand=brand.name,
        cardholder_name=check_cardholder_name(cardholder_name),
    )
