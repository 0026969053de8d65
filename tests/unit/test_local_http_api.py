"""local.http_api: routes from the template, payload-1.0 events, a REST API's response rules."""

from __future__ import annotations

import pytest

from local.cfn import load_deployed_template, resources_of_type
from local.http_api import (
    BAD_GATEWAY,
    STAGE,
    Route,
    build_rest_event,
    find_route,
    response_from_lambda,
    routes_from_template,
)

ROUTES = routes_from_template(load_deployed_template())


def test_routes_are_exactly_the_api_events_of_the_template() -> None:
    expected = {
        (str(event["Properties"]["Method"]).upper(), event["Properties"]["Path"], logical_id)
        for logical_id, function in resources_of_type(
            load_deployed_template(), "AWS::Serverless::Function"
        ).items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "Api"
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


def test_the_stage_is_the_templates() -> None:
    api = load_deployed_template()["Resources"]["CardTokensApi"]

    assert api["Type"] == "AWS::Serverless::Api"
    assert api["Properties"]["StageName"] == STAGE


def test_event_has_the_payload_1_0_shape() -> None:
    event = build_rest_event(
        method="POST",
        path="/payments",
        query_string="a=1&a=2&b=",
        resource="/payments",
        headers=[
            ("Content-Type", "application/json"),
            ("X-Dup", "one"),
            ("x-dup", "two"),
            ("Cookie", "a=1; b=2"),
            ("User-Agent", "pytest"),
            ("Host", "127.0.0.1:3000"),
        ],
        body=b'{"amount": 1}',
        source_ip="10.0.0.9",
        request_id="REQ",
        now=1_700_000_000.5,
    )

    assert (event["resource"], event["path"], event["httpMethod"]) == (
        "/payments",
        "/payments",
        "POST",
    )
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    # Names as the client cased them; the last value, and every value.
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["headers"]["X-Dup"] == "two"
    assert event["multiValueHeaders"]["X-Dup"] == ["one", "two"]
    assert event["headers"]["Cookie"] == "a=1; b=2"
    assert event["headers"]["X-Forwarded-For"] == "10.0.0.9"
    assert event["body"] == '{"amount": 1}'
    assert event["isBase64Encoded"] is False
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    context = event["requestContext"]
    assert (context["requestId"], context["stage"], context["resourcePath"]) == (
        "REQ",
        STAGE,
        "/payments",
    )
    assert (context["httpMethod"], context["path"], context["protocol"]) == (
        "POST",
        "/payments",
        "HTTP/1.1",
    )
    assert context["identity"]["sourceIp"] == "10.0.0.9"
    assert context["identity"]["userAgent"] == "pytest"
    assert context["identity"]["userArn"] is None
    assert context["accountId"] == "123456789012"
    assert context["domainName"] == "127.0.0.1"
    assert context["requestTimeEpoch"] == 1_700_000_000_500
    assert context["requestTime"] == "14/Nov/2023:22:13:20 +0000"


def test_a_body_that_is_not_utf8_arrives_as_text_with_replacements() -> None:
    # No binary media types: a REST API passes the body as text, never base64.
    event = build_rest_event(method="POST", path="/t", resource="/t", body=b"{\xff}")

    assert event["isBase64Encoded"] is False
    assert event["body"] == "{\ufffd}"


def test_a_request_without_body_or_query_has_null_body_and_query() -> None:
    event = build_rest_event(
        method="GET",
        path="/payments/p",
        resource="/payments/{payment_id}",
        path_parameters={"payment_id": "p"},
    )

    assert event["body"] is None
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] == {"payment_id": "p"}


def test_a_response_merges_headers_and_multi_value_headers() -> None:
    response = response_from_lambda(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-One": "1"},
            "multiValueHeaders": {"Content-Type": ["application/json"], "Vary": ["Origin"]},
            "body": '{"ok": true}',
            "isBase64Encoded": False,
        }
    )

    assert response.status == 201
    assert sorted(response.headers) == [
        ("Content-Type", "application/json"),
        ("Vary", "Origin"),
        ("X-One", "1"),
    ]
    assert response.body == b'{"ok": true}'


def test_a_base64_response_body_goes_out_as_its_text() -> None:
    # Without binary media types a REST API does not decode it: the client gets the base64.
    response = response_from_lambda({"statusCode": 200, "body": "AAE=", "isBase64Encoded": True})

    assert response.body == b"AAE="


@pytest.mark.parametrize(
    "result",
    [
        {"hello": "world"},
        "text",
        {"statusCode": "abc"},
        {"statusCode": 200, "body": 42},
        {"statusCode": 200, "headers": {"X-Evil": "a\r\nSet-Cookie: b"}},
        {"statusCode": 99},
    ],
)
def test_a_malformed_response_is_a_rest_apis_502(result: object) -> None:
    assert response_from_lambda(result) == BAD_GATEWAY
    assert BAD_GATEWAY.status == 502
