"""local.http_api: routes from the template, payload-2.0 events, API Gateway's response rules."""

from __future__ import annotations

import base64
import json

import pytest

from local.cfn import load_deployed_template, resources_of_type
from local.http_api import (
    INTERNAL_SERVER_ERROR,
    Route,
    build_http_event,
    find_route,
    response_from_lambda,
    routes_from_template,
)

ROUTES = routes_from_template(load_deployed_template())


def test_routes_are_exactly_the_httpapi_events_of_the_template() -> None:
    expected = {
        (str(event["Properties"]["Method"]).upper(), event["Properties"]["Path"], logical_id)
        for logical_id, function in resources_of_type(
            load_deployed_template(), "AWS::Serverless::Function"
        ).items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }

    assert {(route.method, route.path, route.function) for route in ROUTES} == expected
    assert ("POST", "/tokens", "IssueTokenFunction") in expected


@pytest.mark.parametrize(
    ("method", "path", "route_key", "parameters"),
    [
        ("POST", "/tokens", "POST /tokens", {}),
        ("GET", "/payments/pay_1", "GET /payments/{payment_id}", {"payment_id": "pay_1"}),
        ("GET", "/payments/a%20b", "GET /payments/{payment_id}", {"payment_id": "a b"}),
        ("GET", "/.well-known/jwks.json", "GET /.well-known/jwks.json", {}),
    ],
)
def test_a_request_finds_its_route_and_path_parameters(
    method: str, path: str, route_key: str, parameters: dict[str, str]
) -> None:
    found = find_route(ROUTES, method, path)

    assert found is not None
    assert (found[0].route_key, found[1]) == (route_key, parameters)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/tokens"), ("POST", "/tokens/"), ("GET", "/payments/"), ("GET", "/payments/a/b")],
)
def test_a_request_outside_every_route_finds_none(method: str, path: str) -> None:
    assert find_route(ROUTES, method, path) is None


def test_a_literal_route_wins_over_a_variable_one() -> None:
    routes = sorted(
        [Route("GET", "/payments/{id}", "Variable"), Route("GET", "/payments/latest", "Literal")],
        key=lambda route: route.specificity,
    )

    found = find_route(routes, "GET", "/payments/latest")

    assert found is not None
    assert found[0].function == "Literal"


def test_event_has_the_payload_2_0_shape() -> None:
    event = build_http_event(
        method="POST",
        raw_path="/payments",
        raw_query_string="a=1&a=2&b=",
        route_key="POST /payments",
        headers=[
            ("Content-Type", "application/json"),
            ("X-Dup", "one"),
            ("X-Dup", "two"),
            ("Cookie", "a=1; b=2"),
            ("User-Agent", "pytest"),
            ("Host", "127.0.0.1:3000"),
        ],
        body=b'{"amount": 1}',
        source_ip="10.0.0.9",
        request_id="REQ",
        now=1_700_000_000.5,
    )

    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /payments"
    assert event["rawPath"] == "/payments"
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["x-dup"] == "one,two"
    assert "cookie" not in event["headers"]
    assert event["body"] == '{"amount": 1}'
    assert event["isBase64Encoded"] is False
    assert "pathParameters" not in event
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/payments",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.0.0.9",
        "userAgent": "pytest",
    }
    assert (context["requestId"], context["stage"], context["routeKey"]) == (
        "REQ",
        "$default",
        "POST /payments",
    )
    assert context["accountId"] == "123456789012"
    assert context["domainName"] == "127.0.0.1"
    assert context["timeEpoch"] == 1_700_000_000_500
    assert context["time"] == "14/Nov/2023:22:13:20 +0000"


def test_a_body_that_is_not_utf8_arrives_base64_encoded() -> None:
    event = build_http_event(method="POST", raw_path="/t", route_key="POST /t", body=b"\xff\xfe")

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe"


def test_a_request_without_body_or_query_has_no_body_or_query_keys() -> None:
    event = build_http_event(
        method="GET",
        raw_path="/payments/p",
        route_key="GET /payments/{payment_id}",
        path_parameters={"payment_id": "p"},
    )

    assert "body" not in event
    assert "queryStringParameters" not in event
    assert event["pathParameters"] == {"payment_id": "p"}


def test_a_structured_response_keeps_status_headers_cookies_and_body() -> None:
    response = response_from_lambda(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json"},
            "cookies": ["a=1; Secure"],
            "body": '{"ok": true}',
            "isBase64Encoded": False,
        }
    )

    assert response.status == 201
    assert ("Content-Type", "application/json") in response.headers
    assert ("set-cookie", "a=1; Secure") in response.headers
    assert response.body == b'{"ok": true}'


def test_a_base64_response_body_is_decoded() -> None:
    response = response_from_lambda(
        {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}
    )

    assert response.body == b"\x00\x01"


def test_a_response_without_status_code_is_an_inferred_200_json() -> None:
    response = response_from_lambda({"hello": "world"})

    assert response.status == 200
    assert json.loads(response.body) == {"hello": "world"}


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "abc"},
        {"statusCode": 200, "body": 42},
        {"statusCode": 200, "headers": {"X-Evil": "a\r\nSet-Cookie: b"}},
        {"statusCode": 200, "body": "!!", "isBase64Encoded": True},
        {"statusCode": 99},
    ],
)
def test_a_malformed_response_is_api_gateways_500(result: dict[str, object]) -> None:
    assert response_from_lambda(result) == INTERNAL_SERVER_ERROR
