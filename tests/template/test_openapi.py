"""openapi.yaml is the HTTP contract: valid, strict, and the same routes as template.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate

from local.cfn import load_template, resources_of_type

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
GATEWAY_RESPONSES = {"Forbidden", "NotSigned", "TooManyRequests"}
# One status, two writers: the service's error (origin_not_allowed) or AWS WAF's own 403.
SERVICE_OR_GATEWAY = {
    "OriginNotAllowed": {
        "oneOf": [
            {"$ref": "#/components/schemas/Error"},
            {"$ref": "#/components/schemas/GatewayMessage"},
        ]
    }
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return document


def template_routes() -> set[tuple[str, str]]:
    routes = set()
    for function in resources_of_type(load_template(), "AWS::Serverless::Function").values():
        if "Condition" in function:
            continue  # the optional checkout page (HTML, off by default) is not the API contract
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                routes.add((event["Properties"]["Method"].upper(), event["Properties"]["Path"]))
    return routes


def test_the_spec_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate(spec)


def test_the_spec_and_the_template_declare_the_same_routes(spec: dict[str, Any]) -> None:
    declared = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert declared == template_routes()
    assert len(declared) == 5


def test_request_bodies_refuse_unknown_fields(spec: dict[str, Any]) -> None:
    for name in ("TokenRequest", "PaymentRequest"):
        assert spec["components"]["schemas"][name]["additionalProperties"] is False


def test_every_error_response_has_the_error_shape(spec: dict[str, Any]) -> None:
    responses = spec["components"]["responses"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                name = response["$ref"].rsplit("/", 1)[-1]
                if name in GATEWAY_RESPONSES:
                    continue  # API Gateway's (or AWS WAF's) own answers, in their own shape
                schema = responses[name]["content"]["application/json"]["schema"]
                expected = SERVICE_OR_GATEWAY.get(name, {"$ref": "#/components/schemas/Error"})
                assert schema == expected, (method, path, status)


def test_the_payment_routes_declare_sigv4_as_the_template_does(spec: dict[str, Any]) -> None:
    signed = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if operation.get("security") == [{"sigv4": []}]
    }
    assert signed == {("POST", "/payments"), ("GET", "/payments/{payment_id}")}


def test_the_gateways_own_answers_have_the_gateway_shape(spec: dict[str, Any]) -> None:
    responses = spec["components"]["responses"]
    for name in GATEWAY_RESPONSES:
        schema = responses[name]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/GatewayMessage"}, name
