"""Warm latency and AWS requests per call: the real handlers, the floor and the tutorial on moto.

Everything runs in this process under moto's `mock_aws`, set up the way
tests/integration/conftest.py does it (provision_stack from template.yaml, the project's moto
fixes, a first signing key through the rotation function). Handlers are loaded and called the
way the local stack calls them (local.lambda_runtime), with a fresh LambdaContext per call made
outside the timed span, as the runtime does.

The timed rounds run as a registered merchant (BENCH_MERCHANT_PRINCIPAL, registered in setup with
the operator's MerchantRegistry): issues carry its publishable key, payments its IAM identity.
The registry is cached (MERCHANT_CACHE_SECONDS), so a warm call makes no registry read; the first
calls and the calls after the caches expired show the registry's GetItems.
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
from local.emulator import in_process_aws
from local.sample_events import get_event, load_event, payment_event, set_header

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
# The merchant the timed rounds run as: its back end's IAM user signs the payments.
BENCH_MERCHANT_PRINCIPAL = "arn:aws:iam::123456789012:user/bench-shop"
REGISTRY_ROLE = "merchant registry"  # the registry table's role in request shapes


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


@dataclass(frozen=True)
class Events:
    """Events built from the files in events/, so the bench cannot drift from them, sent as the
    registered merchant: its publishable key on issues, its IAM identity on payments."""

    publishable_key: str
    principal: str = BENCH_MERCHANT_PRINCIPAL

    def issue(self) -> dict[str, Any]:
        event = load_event("issue_token.json")
        return set_header(event, "Authorization", f"Bearer {self.publishable_key}")

    def pay(self, token: str, idempotency_key: str | None) -> dict[str, Any]:
        return self._signed(payment_event(token, idempotency_key))

    def get(self, payment_id: str) -> dict[str, Any]:
        return self._signed(get_event(payment_id))

    def _signed(self, event: dict[str, Any]) -> dict[str, Any]:
        """As API Gateway passes on a SigV4-signed request (AWS_IAM): the caller's ARN."""
        event["requestContext"]["identity"]["userArn"] = self.principal
        return event


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
    counter = RequestCounter()
    counter.install_everywhere()  # before any client of the layer, floor or tutorial exists
    clock = AwsClock()
    clock.install()

    # Powertools' Logger keeps the stdout it found at import, and Metrics prints to stdout: both
    # go to /dev/null here, as cheap a sink as Lambda's log pipe, and out of the report.
    with (
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),
        in_process_aws("bench-warm"),
    ):
        return _run(iterations, warmup, progress, counter, clock)


# The tables each round writes, by the variable that names them, and their role in the report.
TABLE_ROLES = {
    "TOKEN_TABLE_NAME": "tokens",
    "PAYMENT_TABLE_NAME": "payments",
    "IDEMPOTENCY_TABLE_NAME": "idempotency keys",
    "SANDBOX_LEDGER_TABLE_NAME": "sandbox ledger (processor)",
}


@dataclass(frozen=True)
class Sides:
    """What a round calls: each route's handler (with its function, for a context) and floor,
    and the tutorial's two steps."""

    issue_function: Any
    issue_handler: Callable[..., dict[str, Any]]
    pay_function: Any
    pay_handler: Callable[..., dict[str, Any]]
    floor_issue: Any
    floor_cashier: Any
    tutorial_client: Any
    tutorial_server: Any

    def issue(self, event: dict[str, Any]) -> dict[str, Any]:
        return self.issue_handler(event, self.issue_function.context())

    def pay(self, event: dict[str, Any]) -> dict[str, Any]:
        return self.pay_handler(event, self.pay_function.context())


def _run(
    iterations: int,
    warmup: int,
    progress: Callable[[str], None],
    counter: RequestCounter,
    clock: AwsClock,
) -> dict[str, Any]:
    import boto3

    from local.intrinsics import REGION

    environment, functions = _provision(counter)
    merchant = _register_merchant(environment["MERCHANT_TABLE_NAME"])
    sides = _sides(counter, functions, merchant["merchant_id"])
    events = Events(merchant["publishable_key"])
    # The first call of each function in this container: caches empty, clients not built.
    first_calls = _issue_then_pay(sides, events, counter)
    rounds = Rounds(sides, events, counter, clock)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    tables = [environment[name] for name in TABLE_ROLES]
    for index in range(warmup):
        rounds.one(index)
        _purge(dynamodb, tables)
    rounds.series.clear()
    for index in range(iterations):
        rounds.one(index)
        _purge(dynamodb, tables)
        if (index + 1) % max(1, iterations // 4) == 0:
            progress(f"warm: {index + 1}/{iterations} rounds")
    after_expiry = _after_cache_expiry(sides, events, counter)
    return {
        "iterations": iterations,
        "warmup": warmup,
        "series": {name: _figures(series) for name, series in rounds.series.items()},
        "first_call": first_calls,
        "after_cache_expiry": after_expiry,
        "requests": _request_shapes(events, counter, sides),
        "merchant_cache_seconds": _merchant_cache_seconds(),
        "python": sys.version.split()[0],
    }


def _provision(counter: RequestCounter) -> tuple[dict[str, str], dict[str, Any]]:
    """The stack on moto, a first signing key, the layer importable: the functions' environment
    (also set in this process) and the functions."""
    from local import moto_fixes
    from local.cfn import load_template
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
    counter.table_roles = {stack.environment[name]: role for name, role in TABLE_ROLES.items()}
    counter.table_roles[stack.environment["MERCHANT_TABLE_NAME"]] = REGISTRY_ROLE
    counter.processor_tables = {stack.environment["SANDBOX_LEDGER_TABLE_NAME"]}
    return stack.environment, functions


def _register_merchant(table_name: str) -> dict[str, Any]:
    """One merchant in the registry, as the operator adds it (`card-tokens merchants add`),
    before any call is counted: the registry is not empty, so every call is a merchant's."""
    import boto3

    from card_tokens_client.merchants import MerchantRegistry
    from local.intrinsics import REGION

    registry = MerchantRegistry(table_name, boto3.client("dynamodb", region_name=REGION))
    return registry.add(
        name="Bench Shop", origins=["https://shop.example"], principals=[BENCH_MERCHANT_PRINCIPAL]
    )


def _merchant_cache_seconds() -> int:
    """The functions' registry staleness bound, as they read it from their environment."""
    from card_tokens import config

    return config.issuer_settings().merchant_cache_seconds


def _sides(counter: RequestCounter, functions: dict[str, Any], merchant_id: str) -> Sides:
    """Load the handlers, build the floor and the tutorial; the counter sees all their clients."""
    import boto3

    from bench.baseline_tutorial import TutorialClient, TutorialServer, write_key_files
    from bench.floor import Clients, FloorCashier, FloorIssuer
    from local.intrinsics import REGION

    issue_function = functions["IssueTokenFunction"]
    pay_function = functions["ProcessPaymentFunction"]
    issue_handler, pay_handler = issue_function.load(), pay_function.load()

    from card_tokens import aws

    for client in (aws.kms_client(), aws.dynamodb_client(), aws.secretsmanager_client()):
        counter.attach(client.meta.events)
    counter.attach(boto3._get_default_session().events)
    clients = Clients()
    for service in ("kms", "dynamodb", "secretsmanager"):
        counter.attach(clients.get(service).meta.events)
    floor_environment = dict(os.environ)
    key_dir = Path(tempfile.mkdtemp(prefix="card-tokens-tutorial-"))
    private_pem, public_pem = write_key_files(key_dir)
    tutorial_client = TutorialClient(floor_environment["CARD_KEY_ID"], private_pem, REGION)
    tutorial_server = TutorialServer(public_pem, REGION)
    for client in (tutorial_client.kms_client, tutorial_server.kms_client):
        counter.attach(client.meta.events)
    return Sides(
        issue_function,
        issue_handler,
        pay_function,
        pay_handler,
        FloorIssuer(floor_environment, clients, merchant_id=merchant_id),
        FloorCashier(floor_environment, clients, merchant_id=merchant_id),
        tutorial_client,
        tutorial_server,
    )


def _issue_then_pay(sides: Sides, events: Events, counter: RequestCounter) -> dict[str, Any]:
    """One token issued and paid by the handlers: each step's calls, as patterns, and its reads
    of the merchant registry."""
    calls: dict[str, dict[str, Any]] = {}
    with counter.window() as window, counter.recording() as shapes:
        token = _body(sides.issue(events.issue()), 201, ISSUE)["token"]
    calls[ISSUE] = {**_patterns(window.hooked), "registry": registry_reads(shapes)}
    with counter.window() as window, counter.recording() as shapes:
        _body(sides.pay(events.pay(token, _key(token))), 201, PAY)
    calls[PAY] = {**_patterns(window.hooked), "registry": registry_reads(shapes)}
    return calls


def registry_reads(shapes: list[dict[str, Any]]) -> str:
    """The requests on the merchant registry, as a pattern ("dynamodb:GetItem x2", "none")."""
    return _pattern(
        Counter(f"dynamodb:{shape['operation']}" for shape in shapes if _on_registry(shape))
    )


def _on_registry(shape: dict[str, Any]) -> bool:
    return shape.get("table") == REGISTRY_ROLE


def _after_cache_expiry(sides: Sides, events: Events, counter: RequestCounter) -> dict[str, Any]:
    """Caches that have expired (as after SECRET_CACHE_SECONDS and MERCHANT_CACHE_SECONDS): one
    Secrets Manager call and the registry's GetItems, then warm again."""
    from card_tokens.key_store import KEYS
    from card_tokens.wiring import reset_merchant_directories

    KEYS.reset()
    reset_merchant_directories()
    return _issue_then_pay(sides, events, counter)


class Rounds:
    """The timed rounds: every route on both sides, and the tutorial, into one Series each."""

    def __init__(self, sides: Sides, events: Events, counter: RequestCounter, clock: AwsClock):
        self.sides, self.events, self.counter, self.clock = sides, events, counter, clock
        self.series: dict[str, Series] = {}

    def timed(self, name: str, call: Callable[[], Any]) -> Any:
        with self.counter.window() as window:
            self.clock.seconds = 0.0
            started = time.perf_counter()
            result = call()
            elapsed = time.perf_counter() - started
            aws = self.clock.seconds
        self.series.setdefault(name, Series()).add(elapsed, aws, window.hooked, window.everywhere)
        return result

    def both(
        self, name: str, handler: Callable[[], Any], floor: Callable[[], Any], handler_first: bool
    ) -> list[Any]:
        """The handler's and the floor's call, timed in the round's order; handler's first."""
        if handler_first:
            return [self.timed(name, handler), self.timed(f"floor {name}", floor)]
        floor_result = self.timed(f"floor {name}", floor)
        return [self.timed(name, handler), floor_result]

    def one(self, index: int) -> None:
        # Tokens for the payments: each side pays a token the *other* side issued, so the floor
        # is proven to make tokens the handler accepts and to accept the handler's tokens.
        sides, events = self.sides, self.events
        handler_first = index % 2 == 0
        issue_function, issue_handler = sides.issue_function, sides.issue_handler
        # The context is made by the runtime, before the handler's clock starts.
        handler_issue = _call(issue_handler, events.issue(), issue_function.context())
        issued = self.both(
            ISSUE, handler_issue, lambda: sides.floor_issue(events.issue()), handler_first
        )
        handler_token = _body(issued[0], 201, ISSUE)["token"]
        floor_token = _body(issued[1], 201, f"floor {ISSUE}")["token"]
        spare_handler = _body(sides.issue(events.issue()), 201, ISSUE)["token"]
        spare_floor = _body(sides.floor_issue(events.issue()), 201, "floor issue")["token"]

        payment_id = self.pay_pair(PAY, True, floor_token, handler_token, handler_first)
        # The same requests again (a client whose answer was lost): the stored answers.
        self.pay_pair(REPLAY, True, floor_token, handler_token, handler_first)
        self.pay_pair(PAY_NO_KEY, False, spare_floor, spare_handler, handler_first)
        get = events.get(payment_id)
        handler_get = _call(sides.pay_handler, get, sides.pay_function.context())
        for response in self.both(
            GET, handler_get, lambda: sides.floor_cashier.get(get), handler_first
        ):
            _body(response, 200, GET)
        self.tutorial_round()

    def pay_pair(
        self, name: str, keyed: bool, for_handler: str, for_floor: str, handler_first: bool
    ) -> str:
        sides, events = self.sides, self.events
        h_event = events.pay(for_handler, _key(for_handler) if keyed else None)
        f_event = events.pay(for_floor, _key(for_floor) if keyed else None)
        handler_pay = _call(sides.pay_handler, h_event, sides.pay_function.context())
        results = self.both(
            name, handler_pay, lambda: sides.floor_cashier.pay(f_event), handler_first
        )
        for response in results:
            _body(response, 201, name)
        payment_id: str = json.loads(results[0]["body"])["payment_id"]
        return payment_id

    def tutorial_round(self) -> None:
        client, server = self.sides.tutorial_client, self.sides.tutorial_server
        token = self.timed(TUTORIAL_ISSUE, lambda: client.create_jwt(TUTORIAL_CARD))
        card = self.timed(TUTORIAL_PAY, lambda: server.process_jwt(token))
        if card != TUTORIAL_CARD:
            raise RuntimeError("the tutorial baseline did not round-trip its card")


def _call(fn: Callable[..., Any], event: dict[str, Any], context: Any) -> Callable[[], Any]:
    return lambda: fn(event, context)


def _figures(series: Series) -> dict[str, Any]:
    """One series as the report reads it: timings in and outside AWS, and its call patterns."""
    rest = (total - aws for total, aws in zip(series.seconds, series.aws_seconds, strict=True))
    return {
        "summary": Summary.of(series.seconds).as_dict(),
        "aws": Summary.of(series.aws_seconds).as_dict(),
        "rest": Summary.of(rest).as_dict(),
        "calls": dict(series.calls),
        "processor_calls": dict(series.processor),
        "calls_everywhere": dict(series.everywhere),
        "processor_calls_everywhere": dict(series.processor_everywhere),
    }


def _request_shapes(
    events: Events, counter: RequestCounter, sides: Sides
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The DynamoDB requests of every route on each side (untimed), by shape.

    As in the timed rounds, each side pays tokens the other side issued; the replay and the GET
    follow the keyed payment. tests/integration/test_bench_smoke.py compares the two sides.
    """
    shapes: dict[str, dict[str, list[dict[str, Any]]]] = {}
    floor_issue, floor_cashier = sides.floor_issue, sides.floor_cashier

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

    def pay_handler_call(event: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        return lambda: sides.pay(event)

    handler_issued, floor_issued = both(
        ISSUE, lambda: sides.issue(events.issue()), lambda: floor_issue(events.issue())
    )
    spare_handler = _body(sides.issue(events.issue()), 201, ISSUE)["token"]
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
