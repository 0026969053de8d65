"""Hostile card input and request bodies: each a 4xx with the documented code, never a 500."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.flows import Invoke, body, load_event, new_token, payment_event, set_header, token_event


def assert_error(response: dict[str, Any], status: int, code: str) -> None:
    assert response["statusCode"] == status, response["body"]
    assert body(response)["error"]["code"] == code
    assert "4242" not in response["body"]


def raw_body_event(
    raw: bytes, *, base64_encoded: bool = True, content_type: str = "application/json"
) -> dict[str, Any]:
    event = load_event("issue_token.json")
    set_header(event, "Content-Type", content_type)
    event["body"] = base64.b64encode(raw).decode() if base64_encoded else raw.decode()
    event["isBase64Encoded"] = base64_encoded
    return event


@pytest.mark.parametrize(
    "number",
    [
        "4242424242424241",  # Luhn
        "4242 4242 4242 4243",  # Luhn, grouped
        "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢",  # Arabic-Indic digits
        "\uff14\uff12" * 8,  # fullwidth digits
        "4242\u00b2424242424242",  # a superscript two
        "4242_4242_4242_4242",
        "+4242424242424242",
        "4242\u20034242\u20034242\u20034242",  # em spaces
        "4242\u00a04242\u00a04242\u00a04242",  # no-break spaces
        "4242\t4242\t4242\t4242",
        " 4242424242424242",
        "37828224631000",  # Amex prefix, 14 digits
        "5555555555554",  # Mastercard prefix, 13 digits
        "42424242424",  # 11 digits
        "4" + "0" * 18 + "4",  # 20 digits
    ],
)
def test_card_numbers_that_are_not_plain_valid_ascii_digits(issue: Invoke, number: str) -> None:
    assert_error(issue(token_event(card_number=number)), 400, "invalid_card_number")


@pytest.mark.parametrize("number", [4242424242424242, 4.242424242424242e15, True, ["4242"]])
def test_a_card_number_that_is_not_a_string(issue: Invoke, number: object) -> None:
    assert_error(issue(token_event(card_number=number)), 400, "invalid_card_number")


def without(event: dict[str, Any], field: str) -> dict[str, Any]:
    document = json.loads(event["body"])
    del document[field]
    event["body"] = json.dumps(document)
    return event


@pytest.mark.parametrize("field", ["card_number", "exp_month", "exp_year", "cvv"])
@pytest.mark.parametrize("missing", ["absent", None, ""])
def test_a_missing_card_field_is_invalid_request_naming_it(
    issue: Invoke, field: str, missing: object
) -> None:
    event = (
        without(token_event(), field) if missing == "absent" else token_event(**{field: missing})
    )
    response = issue(event)
    assert_error(response, 400, "invalid_request")
    assert body(response)["error"] == {
        "code": "invalid_request",
        "message": f"{field} is required.",
        "field": field,
    }


@pytest.mark.parametrize("field", ["amount", "currency"])
def test_a_missing_payment_field_is_invalid_request_naming_it(
    issue: Invoke, payments: Invoke, field: str
) -> None:
    response = payments(without(payment_event(new_token(issue)), field))
    assert_error(response, 400, "invalid_request")
    assert body(response)["error"] == {
        "code": "invalid_request",
        "message": f"{field} is required.",
        "field": field,
    }


@pytest.mark.parametrize(
    ("number", "cvv"),
    [
        ("378282246310005", "123"),
        ("4242424242424242", "1234"),
        ("5555555555554444", "12"),
        ("4242424242424242", 123),
        ("4242424242424242", "\uff11\uff12\uff13"),
    ],
)
def test_cvv_length_and_form_per_brand(issue: Invoke, number: str, cvv: object) -> None:
    assert_error(issue(token_event(card_number=number, cvv=cvv)), 400, "invalid_cvv")


@pytest.mark.parametrize(
    ("month", "year", "code"),
    [
        (0, 2030, "invalid_expiry"),
        (13, 2030, "invalid_expiry"),
        (12, 99999, "invalid_expiry"),
        (12, 3026, "invalid_expiry"),
        (12, 30, "invalid_expiry"),
        ("12", 2030, "invalid_expiry"),
        (12.5, 2030, "invalid_expiry"),
        (1, 2026, "card_expired"),
        (10, 2026, "card_expired"),
    ],
)
def test_expiry_edges(issue: Invoke, month: object, year: object, code: str) -> None:
    assert_error(issue(token_event(exp_month=month, exp_year=year)), 400, code)


def test_the_current_month_is_still_valid(issue: Invoke) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    assert issue(token_event(exp_month=now.month, exp_year=now.year))["statusCode"] == 201


@pytest.mark.parametrize(
    "raw",
    [
        b'{"card_number": "4242424242424242", "cvv": "123", "exp_month": 12, "exp_year": NaN}',
        b'{"card_number": "4242424242424242", "cvv": "123", "exp_month": Infinity, "exp_year": 1}',
        b'{"card_number": "4111111111111111", "card_number": "4242424242424242"}',
        b"\xef\xbb\xbf" + b'{"card_number": "4242424242424242"}',
        b'{"card_number": "\xff\xfe"}',
        b'{"card_number": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"exp_year": ' + b"9" * 5000 + b"}",
        b"[]",
        b"",
        b"{",
    ],
    ids=[
        "nan",
        "infinity",
        "duplicate-keys",
        "bom",
        "invalid-utf8",
        "deep-nesting",
        "huge-integer",
        "array",
        "empty",
        "truncated",
    ],
)
def test_bodies_that_are_not_one_plain_json_object(issue: Invoke, raw: bytes) -> None:
    assert_error(issue(raw_body_event(raw)), 400, "invalid_request")


def test_unknown_fields(issue: Invoke) -> None:
    assert_error(issue(token_event(admin=True)), 400, "invalid_request")
    response = issue(token_event(**{"4242424242424242": "x"}))
    assert_error(response, 400, "invalid_request")
    assert "field" not in body(response)["error"]


def test_is_base64_encoded_with_junk(issue: Invoke) -> None:
    event = load_event("issue_token.json")
    event["isBase64Encoded"] = True
    event["body"] = "%%%not base64%%%"
    assert_error(issue(event), 400, "invalid_request")


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/jsonx",
        "application/json; charset=utf-16",
    ],
)
def test_wrong_content_types(issue: Invoke, content_type: str) -> None:
    event = load_event("issue_token.json")
    set_header(event, "Content-Type", content_type)
    assert_error(issue(event), 415, "unsupported_media_type")


def test_a_missing_content_type(issue: Invoke) -> None:
    event = load_event("issue_token.json")
    set_header(event, "Content-Type", None)
    assert_error(issue(event), 415, "unsupported_media_type")


@pytest.mark.parametrize("base64_encoded", [False, True])
def test_oversized_bodies(issue: Invoke, base64_encoded: bool) -> None:
    raw = json.dumps({"card_number": "4242424242424242", "pad": "x" * 20_000}).encode()
    assert_error(
        issue(raw_body_event(raw, base64_encoded=base64_encoded)), 413, "payload_too_large"
    )


def test_an_oversized_payment_body_leaves_the_token_usable(issue: Invoke, payments: Invoke) -> None:
    token = new_token(issue)
    event = payment_event(token)
    event["body"] = json.dumps({**json.loads(event["body"]), "reference": "r" * 20_000})
    assert_error(payments(event), 413, "payload_too_large")
    assert payments(payment_event(token))["statusCode"] == 201
