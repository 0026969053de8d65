"""base64url without padding (RFC 7515 §2), the encoding of JWS segments, JWK members, jtis
and sealed card data."""

from __future__ import annotations

import base64


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """The bytes of unpadded (or padded) base64url; ValueError if it is not base64url."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:  # binascii.Error, or a character that is not ASCII
        raise ValueError("not base64url") from None


def decode_canonical(text: str) -> bytes:
    """As decode, but also refuses non-zero trailing bits: one value has exactly one spelling."""
    data = decode(text)
    if encode(data) != text:
        raise ValueError("not canonical base64url")
    return data


def encode_uint(value: int, length: int | None = None) -> str:
    """A non-negative integer, big-endian, in `length` bytes or as few as it needs."""
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return encode(value.to_bytes(size, "big"))


def decode_uint(text: str) -> int:
    return int.from_bytes(decode(text), "big")
