"""Property-based tests: card validation against a reference model, and round trips."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from card_tokens.cards import Card, validate_card
from card_tokens.config import TokenSettings
from card_tokens.errors import InvalidRequest, InvalidToken
from card_tokens.sealing import DataKey, encryption_context, open_card, seal_card
from card_tokens.tokens import new_jti, sign_token, verify_token

from .keys import ring_of, signing_key

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# --- the reference model: the contract's rules written as plainly as possible -----------------

REFERENCE_BRANDS = [  # (brand, prefixes as strings, allowed lengths, cvv length)
    ("amex", ["34", "37"], {15}, 4),
    ("visa", ["4"], {13, 16, 19}, 3),
    ("mastercard", [str(p) for p in range(51, 56)] + [str(p) for p in range(2221, 2721)], {16}, 3),
    (
        "discover",
        [
            "6011",
            *[str(p) for p in range(644, 650)],
            "65",
            *[str(p) for p in range(622126, 622926)],
        ],
        set(range(16, 20)),
        3,
    ),
    ("jcb", [str(p) for p in range(3528, 3590)], set(range(16, 20)), 3),
    ("diners", [*[str(p) for p in range(300, 306)], "36", "38", "39"], set(range(14, 20)), 3),
    ("unionpay", ["62"], set(range(16, 20)), 3),
]


def reference_luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(digits[::-1]):
        value = int(char) * (2 if position % 2 else 1)
        total += value // 10 + value % 10
    return total % 10 == 0


def reference_brand(number: str, cvv: str) -> str | None:
    """The brand if the contract accepts this number and CVV, else None."""
    groups = number.replace("-", " ").split(" ")
    if not all(g and all(c in "0123456789" for c in g) for g in groups):
        return None
    digits = "".join(groups)
    if not 12 <= len(digits) <= 19 or not reference_luhn(digits):
        return None
    for brand, prefixes, lengths, cvv_length in REFERENCE_BRANDS:
        if any(digits.startswith(p) for p in prefixes):
            ok = (
                len(digits) in lengths
                and len(cvv) == cvv_length
                and cvv.isdigit()
                and cvv.isascii()
            )
            return brand if ok else None
    return None


def with_luhn_digit(body: str) -> str:
    for check in "0123456789":
        if reference_luhn(body + check):
            return body + check
    raise AssertionError("unreachable")


prefixes = st.sampled_from(
    [
        "4",
        "34",
        "37",
        "51",
        "55",
        "2221",
        "2720",
        "6011",
        "65",
        "644",
        "3528",
        "36",
        "300",
        "62",
        "622126",
        "9",
        "1",
        "35",
    ]
)
plausible_numbers = st.builds(
    lambda prefix, rest, length, luhn: (
        with_luhn_digit((prefix + rest)[: length - 1]) if luhn else (prefix + rest)[:length]
    ),
    prefixes,
    st.text("0123456789", min_size=20, max_size=20),
    st.integers(10, 21),
    st.booleans(),
)
separated = plausible_numbers.flatmap(
    lambda n: st.lists(
        st.sampled_from(["", " ", "-", "  ", "_", "\u00a0"]), min_size=len(n), max_size=len(n)
    ).map(lambda seps: "".join(c + s for c, s in zip(n, seps, strict=True)).rstrip(" -"))
)
hostile = st.text(alphabet=st.characters(codec="utf-8"), max_size=25)
numbers = st.one_of(plausible_numbers, separated, hostile)
cvvs = st.one_of(st.sampled_from(["123", "1234", "12", "12345", "١٢٣", "12a"]), st.text(max_size=5))


@PROPERTY_SETTINGS
@given(number=numbers, cvv=cvvs)
def test_card_validation_agrees_with_the_reference_model(number: str, cvv: str) -> None:
    expected = reference_brand(number, cvv)
    try:
        card = validate_card(card_number=number, exp_month=12, exp_year=2030, cvv=cvv, now=NOW)
    except InvalidRequest:
        assert expected is None, f"refused a card the contract accepts ({expected})"
    else:
        assert card.brand == expected


class FakeKms:
    def __init__(self) -> None:
        self.keys: dict[bytes, tuple[bytes, dict[str, str]]] = {}

    def generate(self, context: dict[str, str]) -> DataKey:
        plaintext, handle = os.urandom(32), os.urandom(16)
        self.keys[handle] = (plaintext, dict(context))
        return DataKey(plaintext, handle)

    def decrypt(self, encrypted: bytes, context: dict[str, str]) -> bytes:
        plaintext, bound = self.keys[encrypted]
        if bound != context:
            raise InvalidToken("data_key_mismatch")
        return plaintext


cards = st.builds(
    Card,
    pan=st.text("0123456789", min_size=12, max_size=19),
    exp_month=st.integers(1, 12),
    exp_year=st.integers(2026, 2046),
    cvv=st.text("0123456789", min_size=3, max_size=4),
    brand=st.sampled_from(["visa", "amex", "mastercard"]),
    cardholder_name=st.one_of(st.none(), st.text(max_size=100)),
)


@PROPERTY_SETTINGS
@given(card=cards, jti=st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=22, max_size=30))
def test_seal_then_open_gives_the_card_back(card: Card, jti: str) -> None:
    kms = FakeKms()
    context = encryption_context(jti=jti, audience="payments")
    sealed = seal_card(card, context=context, data_keys=kms)
    opened = open_card(
        sealed.meta_data,
        encrypted_data_key=sealed.encrypted_data_key,
        context=context,
        data_keys=kms,
    )
    assert opened == card


SETTINGS = TokenSettings(issuer="https://issuer.example", audience="payments")


@PROPERTY_SETTINGS
@given(
    alg=st.sampled_from(["ES256", "RS256"]),
    lifetime=st.integers(1, 3600),
    meta=st.text(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        min_size=40,
        max_size=400,
    ),
    now=st.integers(1_700_000_000, 2_000_000_000),
)
def test_sign_then_verify_gives_the_claims_back(
    alg: str, lifetime: int, meta: str, now: int
) -> None:
    jti = new_jti()
    token = sign_token(
        signing_key=signing_key(alg),
        settings=SETTINGS,
        jti=jti,
        meta_data=meta,
        now=now,
        lifetime_seconds=lifetime,
    )
    claims = verify_token(token, find_key=ring_of(signing_key(alg)), settings=SETTINGS, now=now)
    assert (claims.jti, claims.meta_data, claims.exp - claims.iat) == (jti, meta, lifetime)


@pytest.fixture(scope="module")
def one_token() -> str:
    return sign_token(
        signing_key=signing_key(),
        settings=SETTINGS,
        jti=new_jti(),
        meta_data="A" * 64,
        now=1_800_000_000,
        lifetime_seconds=900,
    )


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_character_change_is_rejected(one_token: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(one_token) - 1), label="position")
    replacement = data.draw(
        st.one_of(
            st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
            st.characters(codec="utf-8"),
        ).filter(lambda c: c != one_token[position]),
        label="replacement",
    )
    mutated = one_token[:position] + replacement + one_token[position + 1 :]
    with pytest.raises(InvalidToken):
        verify_token(mutated, find_key=ring_of(signing_key()), settings=SETTINGS, now=1_800_000_000)
