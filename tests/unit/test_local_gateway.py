"""local.gateway.LocalRestApi with fake functions: routing, errors, and the access log line."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from local.environments import FunctionError, FunctionTimeoutError
from local.gateway import Exchange, GatewayServer, LocalRestApi
from local.http_api import Route

ROUTES = [Route("POST", "/items", "Create"), Route("GET", "/items/{id}", "Read")]


def echo(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(event),
    }


def explode(event: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("the handler failed")


def call(api: LocalRestApi, method: str, target: str, body: bytes | None = None) -> Any:
    response, request_id = api.handle(
        method=method, target=target, headers=[("Host", "x")], body=body, source_ip="127.0.0.1"
    )
    return response, request_id


def test_the_function_gets_the_event_of_its_route() -> None:
    api = LocalRestApi(ROUTES, {"Create": echo, "Read": echo})

    response, request_id = call(api, "GET", "/items/42?verbose=1")

    event = json.loads(response.body)
    assert response.status == 200
    assert (event["httpMethod"], event["resource"], event["path"]) == (
        "GET",
        "/items/{id}",
        "/items/42",
    )
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"verbose": "1"}
    assert event["requestContext"]["requestId"] == request_id


def test_an_unknown_route_is_404_not_found_and_calls_nothing() -> None:
    calls: list[dict[str, Any]] = []
    api = LocalRestApi(ROUTES, {"Create": calls.append, "Read": calls.append})

    response, _ = call(api, "DELETE", "/items")

    assert (response.status, json.loads(response.body)) == (404, {"message": "Not Found"})
    assert calls == []


def failed_post(create: Any) -> tuple[str, str]:
    """POST /items to a Create function that fails: always the REST API's 502 and its body.

    Returns the request id and what went to the error stream.
    """
    errors = io.StringIO()
    api = LocalRestApi(ROUTES, {"Create": create, "Read": echo}, errors=errors)

    response, request_id = call(api, "POST", "/items", b"{}")

    assert (response.status, json.loads(response.body)) == (
        502,
        {"message": "Internal server error"},
    )
    return request_id, errors.getvalue()


def test_a_handler_that_raises_is_502_and_its_traceback_goes_to_the_error_stream() -> None:
    request_id, errors = failed_post(explode)

    assert "RuntimeError: the handler failed" in errors
    assert request_id in errors


def timed_out(event: dict[str, Any]) -> dict[str, Any]:
    raise FunctionTimeoutError("Create: Task timed out after 3.00 seconds; environment 2 stopped")


def failed_in_its_environment(event: dict[str, Any]) -> dict[str, Any]:
    raise FunctionError("Create: RuntimeError", "Traceback ...\nRuntimeError: the handler failed\n")


def test_a_function_timeout_is_502_with_one_log_line_and_no_traceback() -> None:
    request_id, errors = failed_post(timed_out)

    assert errors.splitlines() == [
        f"[ERROR] Create: Task timed out after 3.00 seconds; environment 2 stopped "
        f"(request {request_id})"
    ]


def test_an_error_in_an_execution_environment_logs_that_environments_traceback() -> None:
    request_id, errors = failed_post(failed_in_its_environment)

    assert errors.startswith(f"[ERROR] Create raised (request {request_id}):\n")
    assert "RuntimeError: the handler failed" in errors


def test_the_server_holds_a_burst_of_hundreds_of_connections() -> None:
    # socketserver's default backlog is 5: a burst of clients got connection resets.
    assert GatewayServer.request_queue_size >= 512
    assert GatewayServer.daemon_threads


def test_routes_that_name_a_missing_function_are_refused() -> None:
    with pytest.raises(ValueError, match="Read"):
        LocalRestApi(ROUTES, {"Create": echo})


def test_the_access_line_has_method_path_status_time_and_request_id() -> None:
    line = Exchange("GET", "/items/abc", 200, 12.34, "REQ=").log_line()

    assert line == "GET /items/abc 200 12.3ms REQ="


@pytest.mark.parametrize("path", ["/items/4242424242424242", "/items/4242 4242 4242 4242"])
def test_the_access_line_masks_what_could_be_a_card_number(path: str) -> None:
    line = Exchange("GET", path, 404, 1.0, "R").log_line()

    assert "4242" not in line
    assert "[digits]" in line
