from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from card_tokens.cards import validate_card
from card_tokens.errors import InvalidToken
from card_tokens.sealing import DataKey, encryption_context, open_card, seal_card


class FakeKms:
    """Wraps data keys under one master key, bound to the context, like KMS does."""

    def __init__(self) -> None:
        self._master = AESGCM(os.urandom(32))

    def _aad(self, context: dict[str, str]) -> bytes:
        return repr(sorted(context.items())).encode()

    def generate(self, context: dict[str, str]) -> DataKey:
        plaintext, nonce = os.urandom(32), os.urandom(12)
        return DataKey(
            plaintext, nonce + self._master.encrypt(nonce, plaintext, self._aad(context))
        )

    def decrypt(self, encrypted: bytes, context: dict[str, str]) -> bytes:
        try:
            return self._master.decrypt(encrypted[:12], encrypted[12:], self._aad(context))
        except InvalidTag:
            raise InvalidToken("data_key_mismatch") from None


CARD = validate_card(
    card_number="4242424242424242",
    exp_month=12,
    exp_year=2030,
    cvv="123",
    cardholder_name="Ada",
    now=datetime(2026, 1, 1, tzinfo=UTC),
)


def sealed(jti: str = "jti-one-aaaaaaaaaaaaaaa") -> tuple[FakeKms, object, dict[str, str]]:
    kms = FakeKms()
    context = encryption_context(jti=jti, audience="payments")
    return kms, seal_card(CARD, context=context, data_keys=kms), context


def test_a_sealed_card_opens_with_its_data_key_and_context() -> None:
    kms, box, context = sealed()
    opened = open_card(
        box.meta_data,
        encrypted_data_key=box.encrypted_data_key,  # type: ignore[attr-defined]
        context=context,
        data_keys=kms,
    )
    assert (opened.pan, opened.cvv, opened.cardholder_name) == (CARD.pan, "123", "Ada")


def test_meta_data_is_base64url_text_without_the_card_in_clear() -> None:
    _, box, _ = sealed()
    meta = box.meta_data  # type: ignore[attr-defined]
    assert meta.isascii()
    assert "=" not in meta
    assert CARD.pan.encode() not in base64.urlsafe_b64decode(meta + "==")


def test_meta_data_moved_into_another_token_does_not_open() -> None:
    kms, box, _ = sealed()
    other_context = encryption_context(jti="jti-two-bbbbbbbbbbbbbbb", audience="payments")
    with pytest.raises(InvalidToken):
        open_card(
            box.meta_data,
            encrypted_data_key=box.encrypted_data_key,  # type: ignore[attr-defined]
            context=other_context,
            data_keys=kms,
        )


@pytest.mark.parametrize(
    "mangle",
    [
        lambda m: m[:-4],
        lambda m: m[:10] + ("A" if m[10] != "A" else "B") + m[11:],
        lambda m: "",
        lambda m: "AAAA",
    ],
)
def test_bit_flipped_truncated_or_empty_meta_data_does_not_open(mangle) -> None:  # type: ignore[no-untyped-def]
    kms, box, context = sealed()
    with pytest.raises(InvalidToken):
        open_card(
            mangle(box.meta_data),
            encrypted_data_key=box.encrypted_data_key,  # type: ignore[attr-defined]
            context=context,
            data_keys=kms,
        )


def test_each_token_gets_a_fresh_data_key_and_nonce() -> None:
    kms = FakeKms()
    context = encryption_context(jti="jti-one-aaaaaaaaaaaaaaa", audience="payments")
    first = seal_card(CARD, context=context, data_keys=kms)
    second = seal_card(CARD, context=context, data_keys=kms)
    assert first.meta_data != second.meta_data
    assert first.encrypted_data_key != second.encrypted_data_key
