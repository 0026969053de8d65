"""card_tokens.cors: POST /tokens answers CORS itself, for exact origins, POST and Content-Type."""

from __future__ import annotations

from typing import Any

import pytest

from card_tokens.cors import (
    InvalidOrigins,
    add_cors_headers,
    parse_origins,
    preflight_headers,
)

SHOP = "https://shop.example"
ORIGINS = frozenset({SHOP, "https://checkout.shop.example:8443"})


def request(**headers: str) -> dict[str, Any]:
    """A payload-1.0 event's header fields, names cased as a browser sends them."""
    return {"headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()}}


def test_the_origins_parameter_is_read_as_exact_origins() -> None:
    assert parse_origins("") == frozenset()
    assert parse_origins(f"{SHOP},http://localhost:5173") == {SHOP, "http://localhost:5173"}


@pytest.mark.parametrize("value", ["*", "https://*.example", "http://shop.example", "null"])
def test_anything_but_an_exact_origin_is_refused(value: str) -> None:
    with pytest.raises(InvalidOrigins):
        parse_origins(value)


def test_a_listed_origin_may_preflight_a_post_with_content_type_only() -> None:
    headers = preflight_headers(
        request(Origin=SHOP, **{"Access-Control-Request-Method": "POST"}), ORIGINS
    )

    assert headers == {
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "authorization, content-type",
        "Access-Control-Max-Age": "600",
    }


@pytest.mark.parametrize(
    ("origin", "method"),
    [
        ("https://evil.example", "POST"),
        ("https://shop.example.evil.example", "POST"),
        ("https://SHOP.example", "POST"),
        (SHOP, "DELETE"),
        (SHOP, ""),
    ],
)
def test_any_other_preflight_gets_no_allowance(origin: str, method: str) -> None:
    event = request(Origin=origin, **{"Access-Control-Request-Method": method})

    assert preflight_headers(event, ORIGINS) == {}


def test_a_listed_origin_is_echoed_on_the_answer_in_powertools_shape() -> None:
    response = {"statusCode": 400, "multiValueHeaders": {"Content-Type": ["application/json"]}}

    add_cors_headers(response, request(origin=SHOP), ORIGINS)

    assert response["multiValueHeaders"] == {
        "Content-Type": ["application/json"],
        "Vary": ["Origin"],
        "Access-Control-Allow-Origin": [SHOP],
    }


def test_an_unlisted_origin_gets_no_allow_origin_but_the_answer_varies() -> None:
    response: dict[str, Any] = {"statusCode": 201, "headers": {}}

    add_cors_headers(response, request(Origin="https://evil.example"), ORIGINS)

    assert response["headers"] == {"Vary": "Origin"}


def test_without_origins_nothing_is_added() -> None:
    response: dict[str, Any] = {"statusCode": 201, "multiValueHeaders": {}}

    add_cors_headers(response, request(Origin=SHOP), frozenset())

    assert response["multiValueHeaders"] == {}
