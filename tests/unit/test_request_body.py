from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from card_tokens.errors import (
    InvalidAmount,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedCurrency,
    UnsupportedMediaType,
)
from card_tokens.merchants import Caller
from card_tokens.request_body import (
    caller_of,
    idempotency_key,
    parse_payment_request,
    read_json_object,
    reject_unknown_fields,
    token_caller_of,
)


def event(body: str | None, content_type: str | None = "application/json", **extra: Any) -> dict:
    headers = {"content-type": content_type} if content_type else {}
    return {"headers": headers, "body": body, "isBase64Encoded": False, **extra}


def test_a_json_object_body_is_read() -> None:
    assert read_json_object(event('{"a": 1}')) == {"a": 1}


def test_base64_bodies_are_decoded_strictly() -> None:
    encoded = base64.b64encode(b'{"a": 1}').decode()
    assert read_json_object(event(encoded, isBase64Encoded=True)) == {"a": 1}
    with pytest.raises(InvalidRequest):
        read_json_object(event("not*base64!", isBase64Encoded=True))


@pytest.mark.parametrize(
    "body",
    [
        "{",
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": 1, "a": 2}',
        "\ufeff{}",
        "[]",
        '"text"',
        "[" * 5000 + "]" * 5000,
        '{"a": ' + "9" * 5000 + "}",
        "",
    ],
)
def test_bodies_that_are_not_a_plain_json_object_are_400(body: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        read_json_object(event(body))
    assert raised.value.status == 400


def test_invalid_utf8_is_400() -> None:
    encoded = base64.b64encode(b'{"a": "\xff"}').decode()
    with pytest.raises(InvalidRequest):
        read_json_object(event(encoded, isBase64Encoded=True))


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/xml", "application/json; charset=latin-1"]
)
def test_a_body_that_is_not_declared_json_is_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        read_json_object(event("{}", content_type))


def test_json_with_utf8_charset_is_accepted() -> None:
    assert read_json_object(event("{}", "application/json; charset=utf-8")) == {}


def test_a_body_over_16_kib_is_413() -> None:
    body = json.dumps({"pad": "x" * (16 * 1024)})
    with pytest.raises(PayloadTooLarge):
        read_json_object(event(body))


def test_unknown_fields_are_named_only_when_the_name_cannot_carry_card_data() -> None:
    with pytest.raises(InvalidRequest) as named:
        reject_unknown_fields({"colour": 1}, ("a", "b"))
    assert named.value.field == "colour"
    assert named.value.message == "Unknown field: colour; the fields are a, b."
    with pytest.raises(InvalidRequest) as anonymous:
        reject_unknown_fields({"4242424242424242": 1}, ("a", "b"))
    assert anonymous.value.field is None
    assert "4242" not in anonymous.value.message
    assert anonymous.value.message.endswith("; the fields are a, b.")


GOOD_PAYMENT = {"token": "a.b.c", "amount": 1999, "currency": "EUR", "reference": "order-1"}


def test_a_valid_payment_request_parses() -> None:
    request = parse_payment_request(GOOD_PAYMENT)
    assert (request.amount, request.currency, request.reference) == (1999, "EUR", "order-1")
    assert "a.b.c" not in repr(request)


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (0, "amount must be from 1 to 99999999 minor units."),
        (-1, "amount must be from 1 to 99999999 minor units."),
        (100_000_000, "amount must be from 1 to 99999999 minor units."),
        (19.99, "amount must be an integer number of minor units, such as 1999 for 19.99."),
        ("1999", "amount must be an integer number of minor units, such as 1999 for 19.99."),
        (True, "amount must be an integer number of minor units, such as 1999 for 19.99."),
    ],
)
def test_amounts_outside_the_integer_range_are_invalid(amount: object, message: str) -> None:
    with pytest.raises(InvalidAmount) as raised:
        parse_payment_request({**GOOD_PAYMENT, "amount": amount})
    assert (raised.value.field, raised.value.message) == ("amount", message)


@pytest.mark.parametrize("currency", ["eur", "EURO", "XXX", 978, ["EUR"]])
def test_unknown_or_malformed_currencies_are_unsupported(currency: object) -> None:
    with pytest.raises(UnsupportedCurrency) as raised:
        parse_payment_request({**GOOD_PAYMENT, "currency": currency})
    assert raised.value.field == "currency"
    assert raised.value.message == (
        "currency must be one of AUD, CAD, CHF, CZK, DKK, EUR, GBP, JPY, NOK, PLN, SEK, USD "
        "(ISO 4217, in capitals)."
    )


@pytest.mark.parametrize("field", ["token", "amount", "currency"])
@pytest.mark.parametrize("missing", ["absent", None, ""])
def test_a_missing_payment_field_is_invalid_request_naming_it(field: str, missing: object) -> None:
    document: dict[str, object] = dict(GOOD_PAYMENT)
    if missing == "absent":
        del document[field]
    else:
        document[field] = missing
    with pytest.raises(InvalidRequest) as raised:
        parse_payment_request(document)
    # Not unsupported_currency nor invalid_amount: nothing was given to be wrong
    assert type(raised.value) is InvalidRequest
    assert (raised.value.code, raised.value.field) == ("invalid_request", field)
    assert raised.value.message == f"{field} is required."


@pytest.mark.parametrize(
    "reference",
    [
        "bell\x07",
        "line\nbreak",
        "del\x7f",
        "c1\x85",
        "no\u00a0break",
        "bidi\u202eoverride",
        "zero\u200bwidth",
        "bom\ufeff",
        "private\ue000",
        "tag\U000e0041",
        "lone\ud800surrogate",
        "",
        "x" * 65,
    ],
)
def test_a_reference_must_be_printable_text_of_1_to_64_characters(reference: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_payment_request({**GOOD_PAYMENT, "reference": reference})
    assert raised.value.field == "reference"
    assert raised.value.message.startswith("reference must be printable text of 1 to 64 characters")


@pytest.mark.parametrize(
    # U+3FFFF is unassigned: it passes, as layers/card_tokens/card_tokens/printable.py says
    "reference",
    ["order-1", "Bestellung Nr. 5 \u2013 Müller", "注文 42", "🙂", "x" * 64, "\U0003ffff"],
)
def test_references_in_any_script_are_accepted(reference: str) -> None:
    assert parse_payment_request({**GOOD_PAYMENT, "reference": reference}).reference == reference


@pytest.mark.parametrize(
    "override", [{"token": 1}, {"token": ["a.b.c"]}, {"reference": "x" * 65}, {"extra": True}]
)
def test_other_malformed_payment_fields_are_400(override: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        parse_payment_request({**GOOD_PAYMENT, **override})


@pytest.mark.parametrize("key", ["", "a" * 256, "has space", "tab\t", "é"])
def test_idempotency_keys_must_be_1_to_255_visible_ascii(key: str) -> None:
    with pytest.raises(InvalidRequest):
        idempotency_key({"headers": {"idempotency-key": key}})


def test_idempotency_key_header_is_case_insensitive() -> None:
    assert idempotency_key({"headers": {"Idempotency-Key": "k-1"}}) == "k-1"
    assert idempotency_key({"headers": {}}) is None


def test_payload_1_0_headers_are_read_whatever_their_casing() -> None:
    # A REST API passes header names as the client wrote them.
    for name in ("Content-Type", "content-type", "CONTENT-TYPE"):
        event = {"headers": {name: "application/json"}, "body": "{}", "isBase64Encoded": False}
        assert read_json_object(event) == {}
    assert idempotency_key({"headers": {"IDEMPOTENCY-KEY": "k-2"}}) == "k-2"


def test_a_repeated_header_is_read_whole_from_multi_value_headers() -> None:
    # `headers` keeps only the last value; refusing the joined value beats picking one.
    event = {
        "headers": {"Idempotency-Key": "second"},
        "multiValueHeaders": {"Idempotency-Key": ["first", "second"]},
    }
    assert idempotency_key(event) == "first,second"
    twice = {
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["text/plain", "application/json"]},
        "body": "{}",
    }
    with pytest.raises(UnsupportedMediaType):
        read_json_object(twice)


@pytest.mark.parametrize(
    ("headers", "publishable_key"),
    [
        ({}, None),  # no header: single-caller mode, or 401 once merchants exist
        ({"Authorization": "Bearer pk_abc"}, "pk_abc"),
        ({"authorization": "bearer pk_abc"}, "pk_abc"),
        ({"AUTHORIZATION": "BEARER   pk_abc "}, "pk_abc"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, ""),  # sent, and never a key
        ({"Authorization": "Bearer"}, ""),
        ({"Authorization": "Bearer pk_abc extra"}, ""),
        ({"Authorization": "pk_abc"}, ""),
    ],
)
def test_the_publishable_key_is_read_from_a_bearer_authorization(
    headers: dict[str, str], publishable_key: str | None
) -> None:
    event = {"headers": {**headers, "origin": "https://shop.example"}}
    caller = token_caller_of(event)
    assert caller.publishable_key == publishable_key
    assert caller.origin == "https://shop.example"


@pytest.mark.parametrize(
    ("identity", "principal"),
    [
        ({"userArn": "arn:aws:iam::123456789012:user/a"}, "arn:aws:iam::123456789012:user/a"),
        ({"userArn": None}, None),
        ({"userArn": ""}, None),
        ({}, None),
        (None, None),
    ],
)
def test_the_payment_caller_is_the_user_arn_api_gateway_verified(
    identity: dict[str, Any] | None, principal: str | None
) -> None:
    assert caller_of({"requestContext": {"identity": identity}}) == Caller(principal)
    assert caller_of({}) == Caller(None)
