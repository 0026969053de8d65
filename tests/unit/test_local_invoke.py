"""local.invoke (`make invoke`): which function an event goes to, and how the answer is printed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from local.cfn import load_deployed_template
from local.http_api import GatewayResponse, routes_from_template
from local.iam import new_local_user
from local.invoke import (
    EVENTS_DIR,
    UsageError,
    as_demo_merchant,
    format_response,
    hint,
    is_http_event,
    read_event,
    target_for,
)
from local.lambda_runtime import functions_from_template
from local.merchants import LocalMerchant
from local.provision import STACK_NAME
from local.sample_events import load_event, set_header

TEMPLATE = load_deployed_template()
ROUTES = routes_from_template(TEMPLATE)
FUNCTIONS = functions_from_template(TEMPLATE, STACK_NAME)


def target(event: dict[str, Any], function: str | None = None) -> str:
    return target_for(event, ROUTES, FUNCTIONS, TEMPLATE, function).function.logical_id


@pytest.mark.parametrize(
    ("name", "function"),
    [
        ("issue_token.json", "IssueTokenFunction"),
        ("process_payment.json", "ProcessPaymentFunction"),
        ("get_payment.json", "ProcessPaymentFunction"),
        ("jwks.json", "PublishJwksFunction"),
    ],
)
def test_each_sample_event_goes_to_the_function_its_route_names(name: str, function: str) -> None:
    event = read_event(EVENTS_DIR / name, function_given=False)

    assert target(event) == function
    assert is_http_event(event)


def test_without_a_resource_the_method_and_path_find_the_route() -> None:
    event = read_event(EVENTS_DIR / "get_payment.json", function_given=False)
    del event["resource"]

    assert event["path"].startswith("/payments/pay_")
    assert target(event) == "ProcessPaymentFunction"


def test_the_resource_names_the_route_whatever_the_path() -> None:
    # payload 1.0: `resource` is the route as declared, `path` what the client called
    event = {"httpMethod": "GET", "resource": "/payments/{payment_id}", "path": "/elsewhere"}

    assert target(event) == "ProcessPaymentFunction"


def test_the_cors_preflight_goes_to_the_token_function() -> None:
    event = {"httpMethod": "OPTIONS", "resource": "/tokens", "path": "/tokens"}

    assert target(event) == "IssueTokenFunction"


def test_function_overrides_the_route_and_an_event_without_one_needs_it() -> None:
    assert target({}, "ReconcilePaymentsFunction") == "ReconcilePaymentsFunction"
    token_event = {"httpMethod": "POST", "resource": "/tokens", "path": "/tokens"}
    assert target(token_event, "PublishJwksFunction") == "PublishJwksFunction"
    with pytest.raises(UsageError, match="FUNCTION=<logical id>"):
        target({"httpMethod": "DELETE", "resource": "/tokens", "path": "/tokens"})
    with pytest.raises(UsageError, match="FUNCTION=<logical id>"):
        target({"httpMethod": "POST", "path": "/nowhere"})


def test_only_an_api_gateway_event_is_answered_as_http() -> None:
    event = read_event(EVENTS_DIR / "issue_token.json", function_given=False)

    assert is_http_event(event)
    assert not is_http_event({})
    assert not is_http_event({"version": "2.0", "routeKey": "POST /tokens", "requestContext": {}})


def test_an_unknown_function_names_the_templates_functions() -> None:
    with pytest.raises(UsageError, match="no function NoSuchFunction; it has IssueTokenFunction"):
        target({}, "NoSuchFunction")


def test_the_rotation_function_is_left_to_make_rotate() -> None:
    with pytest.raises(UsageError, match="`make rotate`"):
        target({}, "RotateSigningKeyFunction")


def test_no_event_file_is_a_usage_error_naming_the_sample_events(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"EVENT=events/<name>\.json .*issue_token\.json"):
        read_event(None, function_given=False)
    with pytest.raises(UsageError, match="no such event file"):
        read_event(tmp_path / "missing.json", function_given=False)
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(UsageError, match="not a JSON object"):
        read_event(tmp_path / "list.json", function_given=False)
    assert read_event(None, function_given=True) == {}


def test_the_answer_prints_status_headers_and_the_body_pretty_printed() -> None:
    body = json.dumps({"error": {"code": "invalid_token"}}).encode()
    response = GatewayResponse(401, [("Content-Type", "application/json")], body)

    assert format_response(response) == (
        "HTTP 401\n"
        "Content-Type: application/json\n"
        "\n"
        '{\n  "error": {\n    "code": "invalid_token"\n  }\n}'
    )
    assert format_response(GatewayResponse(204)) == "HTTP 204\n\n(no body)"


def test_a_refused_payment_event_gets_a_hint_to_run_make_events() -> None:
    advice = hint(Path("events/process_payment.json"), 401)

    assert advice is not None
    assert "`make events`" in advice
    assert hint(Path("events/process_payment.json"), 201) is None
    assert hint(Path("events/issue_token.json"), 401) is None


DEMO = LocalMerchant(
    "mer_" + "a" * 16,
    "demo",
    "pk_" + "b" * 24,
    ("http://127.0.0.1:3000",),
    new_local_user("card-tokens-demo"),
)
ROUTE_OF = {
    f"{route.method} {route.path}": route
    for route in routes_from_template(load_deployed_template())
}


def test_an_event_naming_no_merchant_is_sent_as_the_demo_merchants() -> None:
    tokens = as_demo_merchant(load_event("issue_token.json"), ROUTE_OF["POST /tokens"], DEMO)
    payment = as_demo_merchant(load_event("process_payment.json"), ROUTE_OF["POST /payments"], DEMO)

    assert tokens["headers"]["Authorization"] == f"Bearer {DEMO.publishable_key}"
    assert tokens["multiValueHeaders"]["Authorization"] == [f"Bearer {DEMO.publishable_key}"]
    assert payment["requestContext"]["identity"]["userArn"] == DEMO.user.arn
    assert payment["requestContext"]["identity"]["accessKey"] is None
    assert "Authorization" not in payment["headers"]


def test_an_event_that_names_a_merchant_or_a_stack_without_one_is_left_as_it_is() -> None:
    signed = load_event("process_payment.json")
    signed["requestContext"]["identity"]["userArn"] = "arn:aws:iam::123456789012:user/shop"
    keyed = set_header(load_event("issue_token.json"), "authorization", "Bearer pk_other")

    assert as_demo_merchant(copy.deepcopy(signed), ROUTE_OF["POST /payments"], DEMO) == signed
    assert as_demo_merchant(copy.deepcopy(keyed), ROUTE_OF["POST /tokens"], DEMO) == keyed
    unchanged = load_event("issue_token.json")
    assert as_demo_merchant(copy.deepcopy(unchanged), ROUTE_OF["POST /tokens"], None) == unchanged
