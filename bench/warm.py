"""Warm latency and AWS requests per call: the real handlers, the floor and the tutorial on moto.

Everything runs in this process under moto's `mock_aws`, set up the way
tests/integration/conftest.py does it (provision_stack from template.yaml, the project's moto
fixes, a first signing key through the rotation function). Handlers are loaded and called the
way the local stack calls them (local.lambda_runtime), with a fresh LambdaContext per call made
outside the timed span, as the runtime does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import AwsClock, RequestCounter, Summary, split_processor
from local.emulator import in_process_aws_environment
from local.sample_events import get_event, load_event, payment_event

ROOT = Path(__file__).resolve().parents[1]
STACK_NAME = "card-tokens-bench"
# The routes of the HTTP contract, and the tutorial's two steps.
ISSUE = "POST /tokens"
PAY = "POST /payments"
PAY_NO_KEY = "POST /payments (no Idempotency-Key)"
REPLAY = "POST /payments (replay: same Idempotency-Key and body)"
GET = "GET /payments/{payment_id}"
ROUTES = (ISSUE, PAY, PAY_NO_KEY, REPLAY, GET)
TUTORIAL_ISSUE = "tutorial create_jwt"
TUTORIAL_PAY = "tutorial process_jwt"
TUTORIAL_CARD = {"card_number": "4111111111111111", "expiry_date": "12/25", "cvv": "123"}


@dataclass
class Series:
    """Timings of one thing, and the AWS calls each timed call made.

    A call pattern is "dynamodb:GetItem x1, kms:Decrypt x1" (or "none"); each Counter maps a
    pattern to how many timed calls made it. The processor's calls (the sandbox ledger) are
    counted apart from the service's own.
    """

    seconds: list[float] = field(default_factory=list)
    aws_seconds: list[float] = field(default_factory=list)  # of which inside AWS calls
    calls: Counter[str] = field(default_factory=Counter)
    processor: Counter[str] = field(default_factory=Counter)
    everywhere: Counter[str] = field(default_factory=Counter)
    processor_everywhere: Counter[str] = field(default_factory=Counter)

    def add(
        self, seconds: float, aws: float, hooked: Counter[str], everywhere: Counter[str]
    ) -> None:
        self.seconds.append(seconds)
        self.aws_seconds.append(aws)
        service, processor = split_processor(hooked)
        self.calls[_pattern(service)] += 1
        self.processor[_pattern(processor)] += 1
        service, processor = split_processor(everywhere)
        self.everywhere[_pattern(service)] += 1
        self.processor_everywhere[_pattern(processor)] += 1


def _pattern(calls: Counter[str]) -> str:
    return ", ".join(f"{name} x{count}" for name, count in sorted(calls.items())) or "none"


def _patterns(calls: Counter[str]) -> dict[str, str]:
    """The service's calls and the processor's, as patterns (for the untimed calls)."""
    service, processor = split_processor(calls)
    return {"service": _pattern(service), "processor": _pattern(processor)}


class Events:
    """Events built from the files in events/, so the bench cannot drift from them."""

    def issue(self) -> dict[str, Any]:
        return load_event("issue_token.json")

    def pay(self, token: str, idempotency_key: str | None) -> dict[str, Any]:
        return payment_event(token, idempotency_key)

    def get(self, payment_id: str) -> dict[str, Any]:
        return get_event(payment_id)


def _body(response: dict[str, Any], status: int, what: str) -> dict[str, Any]:
    if response["statusCode"] != status:
        raise RuntimeError(f"{what} answered {response['statusCode']}: {response.get('body')}")
    document: dict[str, Any] = json.loads(response["body"])
    return document


def _key(token: str) -> str:
    return "bench-" + hashlib.sha256(token.encode()).hexdigest()[:40]


def _purge(dynamodb: Any, tables: list[str]) -> None:
    """Empty the tables between rounds (not timed).

    moto's TransactWriteItems deep-copies every table it touches (for rollback), so without
    this a payment would get slower with every round: an emulator cost that AWS does not have,
    which would also dilute the handler/floor ratio towards 1.
    """
    for table in tables:
        description = dynamodb.describe_table(TableName=table)["Table"]
        key_names = [part["AttributeName"] for part in description["KeySchema"]]
        items = dynamodb.scan(TableName=table, ProjectionExpression=", ".join(key_names))["Items"]
        for start in range(0, len(items), 25):
            dynamodb.batch_write_item(
                RequestItems={
                    table: [{"DeleteRequest": {"Key": item}} for item in items[start : start + 25]]
                }
            )


def run(iterations: int, warmup: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """Time every route `iterations` times after `warmup` rounds; returns plain data."""
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL") or n == "AWS_PROFILE"]:
        del os.environ[name]
    os.environ.update(in_process_aws_environment("bench-warm"))
    counter = RequestCounter()
    counter.install_everywhere()  # before any client of the layer, floor or tutorial exists
    clock = AwsClock()
    clock.install()

    from moto import mock_aws

    # Powertools' Logger keeps the stdout it found at import, and Metrics prints to stdout: both
    # go to /dev/null here, as cheap a sink as Lambda's log pipe, and out of the report.
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), mock_aws():
        return _run(iterations, warmup, progress, counter, clock)


def _run(
    iterations: int,
    warmup: int,
    progress: Callable[[str], None],
    counter: RequestCounter,
    clock: AwsClock,
) -> dict[str, Any]:
    import boto3

    from bench.baseline_tutorial import TutorialClient, TutorialServer, write_key_files
    from bench.floor import Clients, FloorCashier, FloorIssuer
    from local import moto_fixes
    from local.cfn import load_template
    from local.intrinsics import REGION
    from local.lambda_runtime import functions_from_template, put_layers_on_path
    from local.provision import provision_stack
    from local.rotation import rotate

    moto_fixes.apply()
    template = load_template()
    stack = provision_stack(STACK_NAME, template)
    # The template declares AWS_ENDPOINT_URL="" (empty in AWS); here moto intercepts anyway.
    os.environ.update(stack.environment)
    put_layers_on_path(template)
    functions = functions_from_template(template, STACK_NAME)
    rotate(stack.environment["SIGNING_KEY_SECRET_ID"], functions["RotateSigningKeyFunction"].invoke)
    issue_function = functions["IssueTokenFunction"]
    pay_function = functions["ProcessPaymentFunction"]
    issue_handler, pay_handler = issue_function.load(), pay_function.load()
    table_roles = {
        "TOKEN_TABLE_NAME": "tokens",
        "PAYMENT_TABLE_NAME": "payments",
        "IDEMPOTENCY_TABLE_NAME": "idempotency keys",
        "SANDBOX_LEDGER_TABLE_NAME": "sandbox ledger (processor)",
    }
    counter.table_roles = {stack.environment[name]: role for name, role in table_roles.items()}
    counter.processor_tables = {stack.environment["SANDBOX_LEDGER_TABLE_NAME"]}

    from card_tokens import aws
    from card_tokens.key_store import KEYS

    for client in (aws.kms_client(), aws.dynamodb_client(), aws.secretsmanager_client()):
        counter.attach(client.meta.events)
    counter.attach(boto3._get_default_session().events)
    clients = Clients()
    for service in ("kms", "dynamodb", "secretsmanager"):
        counter.attach(clients.get(service).meta.events)
    environment = dict(os.environ)
    floor_issue, floor_cashier = (
        FloorIssuer(environment, clients),
        FloorCashier(environment, clients),
    )
    key_dir = Path(tempfile.mkdtemp(prefix="card-tokens-tutorial-"))
    private_pem, public_pem = write_key_files(key_dir)
    tutorial_client = TutorialClient(stack.environment["CARD_KEY_ID"], private_pem, REGION)
    tutorial_server = TutorialServer(public_pem, REGION)
    for client in (tutorial_client.kms_client, tutorial_server.kms_client):
        counter.attach(client.meta.events)

    events = Events()
    series: dict[str, Series] = {}

    def timed(name: str, call: Callable[[], Any]) -> Any:
        with counter.window() as window:
            clock.seconds = 0.0
            started = time.perf_counter()
            result = call()
            elapsed = time.perf_counter() - started
            aws = clock.seconds
        series.setdefault(name, Series()).add(elapsed, aws, window.hooked, window.everywhere)
        return result

    def handler(function: Any, fn: Callable[..., Any], event: dict[str, Any]) -> Callable[[], Any]:
        context = function.context()  # made by the runtime, before the handler's clock starts
        return lambda: fn(event, context)

    # The first call of each function in this container: caches empty, clients not built.
    first_calls: dict[str, dict[str, str]] = {}
    with counter.window() as window:
        first_token = _body(issue_handler(events.issue(), issue_function.context()), 201, ISSUE)
    first_calls[ISSUE] = _patterns(window.hooked)
    with counter.window() as window:
        token = first_token["token"]
        _body(pay_handler(events.pay(token, _key(token)), pay_function.context()), 201, PAY)
    first_calls[PAY] = _patterns(window.hooked)

    def one_round(index: int) -> None:
        # Tokens for the payments: each side pays a token the *other* side issued, so the floor
        # is proven to make tokens the handler accepts and to accept the handler's tokens.
        handler_first = index % 2 == 0
        issue_pair = [
            lambda: timed(ISSUE, handler(issue_function, issue_handler, events.issue())),
            lambda: timed(f"floor {ISSUE}", lambda: floor_issue(events.issue())),
        ]
        responses = [pair() for pair in (issue_pair if handler_first else issue_pair[::-1])]
        if not handler_first:
            responses.reverse()
        handler_token = _body(responses[0], 201, ISSUE)["token"]
        floor_token = _body(responses[1], 201, f"floor {ISSUE}")["token"]
        spare_handler = _body(issue_handler(events.issue(), issue_function.context()), 201, ISSUE)
        spare_floor = _body(floor_issue(events.issue()), 201, "floor issue")

        def pay_pair(name: str, keyed: bool, for_handler: str, for_floor: str) -> str:
            h_event = events.pay(for_handler, _key(for_handler) if keyed else None)
            f_event = events.pay(for_floor, _key(for_floor) if keyed else None)
            steps = [
                lambda: timed(name, handler(pay_function, pay_handler, h_event)),
                lambda: timed(f"floor {name}", lambda: floor_cashier.pay(f_event)),
            ]
            results = [step() for step in (steps if handler_first else steps[::-1])]
            if not handler_first:
                results.reverse()
            for response in results:
                _body(response, 201, name)
            payment_id: str = json.loads(results[0]["body"])["payment_id"]
            return payment_id

        payment_id = pay_pair(PAY, True, floor_token, handler_token)
        # The same requests again (a client whose answer was lost): the stored answers.
        pay_pair(REPLAY, True, floor_token, handler_token)
        pay_pair(PAY_NO_KEY, False, spare_floor["token"], spare_handler["token"])
        get_steps = [
            lambda: timed(GET, handler(pay_function, pay_handler, events.get(payment_id))),
            lambda: timed(f"floor {GET}", lambda: floor_cashier.get(events.get(payment_id))),
        ]
        for step in get_steps if handler_first else get_steps[::-1]:
            _body(step(), 200, GET)
        tutorial_token = timed(TUTORIAL_ISSUE, lambda: tutorial_client.create_jwt(TUTORIAL_CARD))
        card = timed(TUTORIAL_PAY, lambda: tutorial_server.process_jwt(tutorial_token))
        if card != TUTORIAL_CARD:
            raise RuntimeError("the tutorial baseline did not round-trip its card")

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    tables = [stack.environment[name] for name in table_roles]
    for index in range(warmup):
        one_round(index)
        _purge(dynamodb, tables)
    series.clear()
    for index in range(iterations):
        one_round(index)
        _purge(dynamodb, tables)
        if (index + 1) % max(1, iterations // 4) == 0:
            progress(f"warm: {index + 1}/{iterations} rounds")

    # A cache that has expired (as after SECRET_CACHE_SECONDS): one Secrets Manager call, then
    # warm again.
    KEYS.reset()
    after_expiry: dict[str, dict[str, str]] = {}
    with counter.window() as window:
        _body(issue_handler(events.issue(), issue_function.context()), 201, ISSUE)
    after_expiry[ISSUE] = _patterns(window.hooked)
    token = _body(issue_handler(events.issue(), issue_function.context()), 201, ISSUE)["token"]
    with counter.window() as window:
        _body(pay_handler(events.pay(token, _key(token)), pay_function.context()), 201, PAY)
    after_expiry[PAY] = _patterns(window.hooked)
    requests = _request_shapes(
        events,
        counter,
        (issue_handler, issue_function),
        (pay_handler, pay_function),
        floor_issue,
        floor_cashier,
    )

    return {
        "iterations": iterations,
        "warmup": warmup,
        "series": {
            name: {
                "summary": Summary.of(s.seconds).as_dict(),
                "aws": Summary.of(s.aws_seconds).as_dict(),
                "rest": Summary.of(
                    a - b for a, b in zip(s.seconds, s.aws_seconds, strict=True)
                ).as_dict(),
                "calls": dict(s.calls),
                "processor_calls": dict(s.processor),
                "calls_everywhere": dict(s.everywhere),
                "processor_calls_everywhere": dict(s.processor_everywhere),
            }
            for name, s in series.items()
        },
        "first_call": first_calls,
        "after_cache_expiry": after_expiry,
        "requests": requests,
        "python": sys.version.split()[0],
    }


def _request_shapes(
    events: Events,
    counter: RequestCounter,
    issue: tuple[Callable[..., Any], Any],
    pay: tuple[Callable[..., Any], Any],
    floor_issue: Callable[[dict[str, Any]], dict[str, Any]],
    floor_cashier: Any,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The DynamoDB requests of every route on each side (untimed), by shape.

    As in the timed rounds, each side pays tokens the other side issued; the replay and the GET
    follow the keyed payment. tests/integration/test_bench_smoke.py compares the two sides.
    """
    (issue_handler, issue_function), (pay_handler, pay_function) = issue, pay
    shapes: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def both(
        route: str,
        handler_call: Callable[[], dict[str, Any]],
        floor_call: Callable[[], dict[str, Any]],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        status = 200 if route == GET else 201
        with counter.recording() as handler_side:
            handler_response = _body(handler_call(), status, route)
        with counter.recording() as floor_side:
            floor_response = _body(floor_call(), status, f"floor {route}")
        shapes[route] = {"handler": handler_side, "floor": floor_side}
        return handler_response, floor_response

    def issue_handler_call() -> dict[str, Any]:
        result: dict[str, Any] = issue_handler(events.issue(), issue_function.context())
        return result

    def pay_handler_call(event: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        return lambda: pay_handler(event, pay_function.context())

    handler_issued, floor_issued = both(
        ISSUE, issue_handler_call, lambda: floor_issue(events.issue())
    )
    spare_handler = _body(issue_handler_call(), 201, ISSUE)["token"]
    spare_floor = _body(floor_issue(events.issue()), 201, f"floor {ISSUE}")["token"]
    for_handler, for_floor = floor_issued["token"], handler_issued["token"]
    keyed_handler = events.pay(for_handler, _key(for_handler))
    keyed_floor = events.pay(for_floor, _key(for_floor))
    paid, _ = both(PAY, pay_handler_call(keyed_handler), lambda: floor_cashier.pay(keyed_floor))
    both(REPLAY, pay_handler_call(keyed_handler), lambda: floor_cashier.pay(keyed_floor))
    get = events.get(paid["payment_id"])
    both(GET, pay_handler_call(get), lambda: floor_cashier.get(get))
    unkeyed_handler, unkeyed_floor = events.pay(spare_floor, None), events.pay(spare_handler, None)
    both(
        PAY_NO_KEY,
        pay_handler_call(unkeyed_handler),
        lambda: floor_cashier.pay(unkeyed_floor),
    )
    return shapes
