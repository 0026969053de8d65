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

# ASCII digits only (re.ASCII keeps \d from matching Arabic-Indic or fullwidth digits); one space
# or hyphen may separate digit groups, nothing else.
_CARD_NUMBER = re.compile(r"[0-9]+(?:[ -][0-9]+)*", re.ASCII)
_CVV = re.compile(r"[0-9]{3,4}", re.ASCII)
MAX_EXPIRY_YEARS_AHEAD = 20
MAX_CARDHOLDER_NAME = 100


@dataclass(frozen=True)
class Brand:
    name: str
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
    Brand("amex", ((34, 34), (37, 37)), frozenset({15}), cvv_length=4),
    Brand("visa", ((4, 4),), frozenset({13, 16, 19})),
    Brand("mastercard", ((51, 55), (2221, 2720)), frozenset({16})),
    Brand(
        "discover",
        ((6011, 6011), (644, 649), (65, 65), (622126, 622925)),
        frozenset(range(16, 20)),
    ),
    Brand("jcb", ((3528, 3589),), frozenset(range(16, 20))),
    Brand("diners", ((300, 305), (36, 36), (38, 39)), frozenset(range(14, 20))),
    Brand("unionpay", ((62, 62),), frozenset(range(16, 20))),
)


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


def normalize_card_number(raw: object) -> str:
    """The bare digits of a card number, or InvalidCardNumber."""
    if not isinstance(raw, str) or not _CARD_NUMBER.fullmatch(raw):
        raise InvalidCardNumber(field="card_number")
    pan = raw.replace(" ", "").replace("-", "")
    if not 12 <= len(pan) <= 19 or not luhn_valid(pan):
        raise InvalidCardNumber(field="card_number")
    return pan


def detect_brand(pan: str) -> Brand:
    for brand in BRANDS:
        if brand.matches(pan):
            if len(pan) not in brand.lengths:
                break
            return brand
    raise InvalidCardNumber(field="card_number")


def _strict_int(value: object, field: str, error: type[InvalidRequest]) -> int:
    # bool is an int in Python; JSON true is not a month.
    if type(value) is not int:
        raise error(f"{field} must be an integer.", field=field)
    return value


def check_expiry(exp_month: object, exp_year: object, now: datetime) -> tuple[int, int]:
    """The card is good through the last second of its expiry month (UTC)."""
    month = _strict_int(exp_month, "exp_month", InvalidExpiry)
    year = _strict_int(exp_year, "exp_year", InvalidExpiry)
    if not 1 <= month <= 12:
        raise InvalidExpiry("exp_month must be from 1 to 12.", field="exp_month")
    if not 1000 <= year <= 9999:
        raise InvalidExpiry("exp_year must have four digits.", field="exp_year")
    if year > now.year + MAX_EXPIRY_YEARS_AHEAD:
        raise InvalidExpiry("exp_year is too far in the future.", field="exp_year")
    last_day = calendar.monthrange(year, month)[1]
    end_of_month = datetime(year, month, last_day, 23, 59, 59, tzinfo=UTC)
    if now > end_of_month:
        raise CardExpired(field="exp_year")
    return month, year


def check_cvv(raw: object, brand: Brand) -> str:
    if not isinstance(raw, str) or not _CVV.fullmatch(raw) or len(raw) != brand.cvv_length:
        raise InvalidCvv(field="cvv")
    return raw


def check_cardholder_name(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > MAX_CARDHOLDER_NAME or not raw.isprintable():
        raise InvalidRequest(
            "cardholder_name must be printable text of at most 100 characters.",
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
