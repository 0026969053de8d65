"""`make invoke EVENT=events/jwks.json`: one event through its real handler, in this process.

The function is the one template.yaml routes the event to (its httpMethod and resource, else its
httpMethod and path), or the one given with --function (make invoke FUNCTION=...), for an event
without a route.
Its handler is imported in this process, as Lambda would import it (the function's code, the
layer), with the function's own environment variables, and called once with the event and a
fresh context: no Docker, no container. It runs against the AWS emulator of a running `make run`
(--moto-port, 5005), that is against the local stack's tables, keys and secrets: a token the
stack issued pays here, a token issued here pays there. Nothing else is started: with no stack
there, it says so and exits 3.

What it prints is what API Gateway (the REST API) would answer for a payload-1.0 event (status,
headers, the body pretty-printed; a handler that raised is its 502), or the handler's return value
for any other event. The function's own logs
(Powertools JSON lines, EMF metrics) are dropped unless --verbose, which prints them on stderr.

Exit status: 0 the function answered (whatever the HTTP status); 1 the handler raised (API
Gateway's 502); 2 usage: no such event file or function, or an event without a route; 3 no local
stack on the emulator's port.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from local.cfn import TEMPLATE_PATH, load_deployed_template
from local.environments import lambda_variables
from local.http_api import (
    BAD_GATEWAY,
    GatewayResponse,
    Route,
    find_route,
    response_from_lambda,
    routes_from_template,
)
from local.iam import CredentialsFile, caller_of
from local.lambda_runtime import LocalFunction, functions_from_template, layer_paths
from local.merchants import LocalMerchant, add_credentials_option, find_demo_merchant
from local.provision import STACK_NAME, LocalStack
from local.rotation import LOCAL_KEY_CACHE_SECONDS, schedules_from_template
from local.sample_events import set_header

EXIT_FUNCTION_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_STACK = 3
EVENTS_DIR = TEMPLATE_PATH.parent / "events"
# The tracked events whose token or payment exists only in the stack `make events` ran against.
STACK_BOUND_EVENTS = ("process_payment.json", "get_payment.json")


class UsageError(ValueError):
    """No event file, an unknown function, or an event no route serves."""


class NoStackError(RuntimeError):
    """No local stack answers on the emulator's port."""


@dataclass(frozen=True)
class Target:
    """The function to invoke, and the route that led there (None: given by name)."""

    function: LocalFunction
    route: Route | None


def read_event(path: Path | None, function_given: bool) -> dict[str, Any]:
    """The event file as JSON; `{}` when only a function is given (a scheduled run)."""
    if path is None:
        if function_given:
            return {}
        raise UsageError(
            "which event? EVENT=events/<name>.json (make invoke), one of: " + _event_names()
        )
    if not path.is_file():
        raise UsageError(f"{path}: no such event file; events/ holds {_event_names()}")
    try:
        event = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{path} is not a JSON event ({error})") from None
    if not isinstance(event, dict):
        raise UsageError(f"{path} is not a JSON object, as a Lambda event from API Gateway is")
    return event


def _event_names() -> str:
    return ", ".join(
        sorted(path.name for path in EVENTS_DIR.glob("*.json") if path.name != "env.json")
    )


def target_for(
    event: Mapping[str, Any],
    routes: list[Route],
    functions: Mapping[str, LocalFunction],
    template: dict[str, Any],
    function_name: str | None = None,
) -> Target:
    """The function the event goes to: the one named, else the route's (resource, else path)."""
    rotated = {schedule.function for schedule in schedules_from_template(template)}
    if function_name is not None:
        if function_name not in functions:
            raise UsageError(
                f"template.yaml has no function {function_name}; it has {', '.join(functions)}"
            )
        if function_name in rotated:
            raise UsageError(
                f"{function_name} is run by Secrets Manager, in four steps that each need the "
                "others: `make rotate` runs them against the local stack"
            )
        return Target(functions[function_name], None)
    route = _route_of(event, routes)
    if route is None:
        raise UsageError(
            "the event is for no route of template.yaml (no httpMethod with a resource or "
            "path that one serves): name the function with FUNCTION=<logical id> (make invoke) "
            f"or --function, one of {', '.join(functions)}"
        )
    return Target(functions[route.function], route)


def _route_of(event: Mapping[str, Any], routes: list[Route]) -> Route | None:
    """The route of a payload-1.0 event: its method and resource (the route's path as declared,
    e.g. /payments/{payment_id}), else its method and the path it was called with."""
    method = event.get("httpMethod")
    if not isinstance(method, str):
        return None
    method = method.upper()
    resource = event.get("resource")
    for route in routes:
        if route.method in (method, "ANY") and route.path == resource:
            return route
    path = event.get("path")
    if isinstance(path, str):
        found = find_route(routes, method, path)
        if found is not None:
            return found[0]
    return None


def is_http_event(event: Mapping[str, Any]) -> bool:
    """A payload-1.0 event from API Gateway (REST API): its answer is an HTTP response."""
    return isinstance(event.get("httpMethod"), str) and isinstance(
        event.get("requestContext"), dict
    )


def connect(host: str, port: int, stack_name: str, template: dict[str, Any]) -> LocalStack:
    """The running local stack on that emulator; NoStackError, saying what to do, if none."""
    from local.emulator import use_local_aws
    from local.provision import discover_stack

    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as error:
        raise NoStackError(
            f"no local stack: nothing answers on {host}:{port}, where `make run` serves its AWS "
            f"emulator ({error.strerror or type(error).__name__}). Start `make run` in another "
            "terminal and invoke again (for a stack on another port: make invoke MOTO_PORT=..., "
            "or --moto-port)."
        ) from None
    use_local_aws(f"http://{host}:{port}")
    try:
        return discover_stack(stack_name, template)
    except Exception as error:  # noqa: BLE001 - any failure here means "not that stack"
        raise NoStackError(
            f"{host}:{port} answers, but holds no local stack '{stack_name}' "
            f"({type(error).__name__}): is it the AWS emulator of `make run`?"
        ) from None


def function_environment(
    stack: LocalStack, function: LocalFunction, template: dict[str, Any]
) -> dict[str, str]:
    """What `make run` gives this function's execution environments, over this process's."""
    spec = function.spec(layer_paths(template))
    return {
        **stack.function_environments[function.logical_id],
        "POWERTOOLS_PARAMETERS_MAX_AGE": str(LOCAL_KEY_CACHE_SECONDS),
        **lambda_variables(spec),
        "AWS_LAMBDA_LOG_STREAM_NAME": "local/invoke",
    }


@dataclass
class Invocation:
    result: Any = None
    error: str | None = None  # the traceback, if the handler raised
    init_ms: float = 0.0
    duration_ms: float = 0.0


def invoke_here(
    function: LocalFunction,
    event: dict[str, Any],
    template: dict[str, Any],
    logs: TextIO,
) -> Invocation:
    """Import the handler (its cold start) and call it once; what it prints goes to `logs`."""
    for path in reversed([function.code_uri, *layer_paths(template)]):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    invocation = Invocation()
    # Powertools binds its log stream (stdout) when the logger is created, at import.
    with contextlib.redirect_stdout(logs):
        started = time.perf_counter()
        try:
            handler = function.load()
        except Exception:  # noqa: BLE001 - Lambda reports an init error the same way
            invocation.error = traceback.format_exc()
            invocation.init_ms = (time.perf_counter() - started) * 1000
            return invocation
        loaded = time.perf_counter()
        invocation.init_ms = (loaded - started) * 1000
        try:
            invocation.result = handler(event, function.context())
        except Exception:  # noqa: BLE001 - the runtime reports it as the function's error
            invocation.error = traceback.format_exc()
        invocation.duration_ms = (time.perf_counter() - loaded) * 1000
    return invocation


def format_response(response: GatewayResponse) -> str:
    """Status line, headers, a blank line and the body (JSON pretty-printed)."""
    lines = [f"HTTP {response.status}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    lines += ["", format_body(response.body)]
    return "\n".join(lines)


def format_body(body: bytes) -> str:
    if not body:
        return "(no body)"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return f"({len(body)} bytes, not UTF-8 text)"
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except json.JSONDecodeError:
        return text


def hint(event_path: Path | None, status: int) -> str | None:
    """Why a tracked payment event may be refused by the stack running now."""
    if event_path is None or event_path.name not in STACK_BOUND_EVENTS:
        return None
    if status not in (401, 404, 409):
        return None
    return (
        f"hint: {event_path.name} names a token or payment of the stack that was running when "
        "`make events` wrote it; each `make run` starts with new keys and tables, and a token "
        "lasts 15 minutes and pays once. Run `make events` (with this stack running), then "
        "invoke again."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local.invoke",
        description="Run one event through its function's handler, in this process, against "
        "the local stack of a running `make run`.",
    )
    parser.add_argument(
        "event", nargs="?", type=Path, help="the event file, e.g. events/issue_token.json"
    )
    parser.add_argument(
        "--function",
        metavar="LOGICAL_ID",
        help="invoke this function (e.g. ReconcilePaymentsFunction) instead of the event's "
        "route's; without an event file, with the event {}",
    )
    parser.add_argument("--moto-port", type=int, default=5005, help="the stack's AWS emulator")
    parser.add_argument("--moto-host", default="127.0.0.1")
    parser.add_argument("--stack-name", default=STACK_NAME, help=f"default {STACK_NAME}")
    add_credentials_option(parser)
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the function's own logs (Powertools JSON lines, EMF metrics) on stderr",
    )
    return parser.parse_args(argv)


def as_demo_merchant(
    event: dict[str, Any], route: Route | None, demo: LocalMerchant | None
) -> dict[str, Any]:
    """An event that names no merchant, sent as the demo merchant's (when the stack has one):
    POST /tokens with its publishable key, an AWS_IAM route with its caller, as `make run`'s
    gateway treats an unsigned request. An event that names one is left as it is."""
    if demo is None or route is None:
        return event
    headers = {name.lower() for name in event.get("headers") or {}}
    if route.route_key == "POST /tokens" and "authorization" not in headers:
        set_header(event, "Authorization", f"Bearer {demo.publishable_key}")
    identity = event.get("requestContext", {}).get("identity")
    if route.authorizer == "AWS_IAM" and isinstance(identity, dict) and not identity.get("userArn"):
        identity.update(caller_of(demo.user, signed=False).identity())
    return event


def _demo_of(args: argparse.Namespace) -> LocalMerchant | None:
    import boto3

    return find_demo_merchant(
        stack_name=args.stack_name,
        dynamodb_client=boto3.client("dynamodb"),
        credentials=CredentialsFile(args.credentials_file),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    template = load_deployed_template()
    functions = functions_from_template(template, args.stack_name)

    try:
        event = read_event(args.event, args.function is not None)
        target = target_for(
            event, routes_from_template(template), functions, template, args.function
        )
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        stack = connect(args.moto_host, args.moto_port, args.stack_name, template)
    except NoStackError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NO_STACK

    event = as_demo_merchant(event, target.route, _demo_of(args))
    function = target.function
    os.environ.update(function_environment(stack, function, template))
    what = f"{target.route.route_key} → " if target.route else ""
    print(
        f"{what}{function.logical_id}, in this process, against the local stack on "
        f"{args.moto_host}:{args.moto_port}",
        flush=True,
    )
    logs: TextIO = sys.stderr if args.verbose else io.StringIO()
    invocation = invoke_here(function, event, template, logs)
    timing = f"init {invocation.init_ms:.0f} ms, duration {invocation.duration_ms:.0f} ms"
    if invocation.error is not None:
        print(f"{function.logical_id} raised ({timing}):\n{invocation.error}", file=sys.stderr)
        if is_http_event(event):
            print(format_response(BAD_GATEWAY))
        return EXIT_FUNCTION_ERROR
    print(f"answered ({timing}):")
    if is_http_event(event):
        response = response_from_lambda(invocation.result)
        print(format_response(response))
        advice = hint(args.event, response.status)
        if advice:
            print(advice, file=sys.stderr)
    else:
        print(json.dumps(invocation.result, indent=2, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
