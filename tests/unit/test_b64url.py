"""The one base64url helper: unpadded, and canonical where a token needs one spelling."""

from __future__ import annotations

import pytest

from card_tokens import b64url


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff\xfe", b"card-token", bytes(range(33))])
def test_encode_is_unpadded_url_safe_and_decodes_back(data: bytes) -> None:
    text = b64url.encode(data)
    assert not set(text) & set("=+/")
    assert b64url.decode(text) == data
    assert b64url.decode_canonical(text) == data


def test_a_second_spelling_of_the_same_bytes_is_not_canonical() -> None:
    assert b64url.decode("QR") == b64url.decode("QQ") == b"A"  # the trailing bits differ
    with pytest.raises(ValueError, match="not canonical base64url"):
        b64url.decode_canonical("QR")


@pytest.mark.parametrize("text", ["Q", "not base64url!", "é"])
def test_what_is_not_base64url_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="base64url"):
        b64url.decode_canonical(text)


def test_integers_are_big_endian_in_as_few_bytes_or_a_fixed_width() -> None:
    assert b64url.encode_uint(65537) == "AQAB"  # RSA's usual e, as every JWK spells it
    assert b64url.decode_uint("AQAB") == 65537
    assert b64url.encode_uint(0) == "AA"
    assert b64url.decode(b64url.encode_uint(1, 32)) == bytes(31) + b"\x01"
