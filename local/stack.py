"""`make run`: the template's API on http://127.0.0.1:3000, backed by an in-process moto server.

Starts moto (or uses the AWS endpoint given with --aws-endpoint-url), provisions the template's
tables, key and secrets there, runs the signing-key rotation once (as the deploy does), then
serves every Api route of template.yaml (a REST API) through a small stand-in for API Gateway. Each
function runs as Lambda runs it: in execution environments, worker processes started on demand
(up to --concurrency per function), each with its own cold start and caches, all at once.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from local.cfn import load_deployed_template, resources_of_type
from local.emulator import PortInUseError, check_port_free, start_moto, use_local_aws
from local.environments import close_all
from local.gateway import GatewayServer, LocalRestApi
from local.http_api import NOT_FOUND, GatewayResponse, Route, routes_from_template
from local.iam import CredentialsFile, IamAuthorizer
from local.intrinsics import REGION
from local.lambda_runtime import (
    LocalFunction,
    functions_from_template,
    layer_paths,
    put_layers_on_path,
)
from local.merchants import DEMO_PROFILE, LocalMerchant, add_credentials_option, demo_merchant
from local.provision import (
    KMS_ALIAS,
    SECRET,
    STACK_NAME,
    TABLE,
    LocalStack,
    discover_stack,
    named_resolver,
    provision_stack,
)
from local.rotation import LOCAL_KEY_CACHE_SECONDS, rotate_all
from local.sample_card import SAMPLE_CARD
from web.checkout.page import PAGE_FILES, page_response

EXIT_PORT_IN_USE = 2
EXIT_AWS_ENDPOINT = 3
DEFAULT_CONCURRENCY = 4
# How long the functions cache the merchant registry (AWS: 60); 0 here so a `card-tokens
# merchants rotate-key` or remove takes effect at once. MERCHANT_CACHE_SECONDS in their environment.
LOCAL_MERCHANT_CACHE_SECONDS = 0
# Local only: the sandbox processor's own record of charges, for reconciliation tests.
LEDGER_PATH = "/_local/sandbox-ledger"
# Local only: each function's execution environments (worker processes), for the tests.
ENVIRONMENTS_PATH = "/_local/environments"


def sandbox_ledger() -> GatewayResponse:
    """Every charge the sandbox processor made: payment id, outcome, amount, currency, last4.

    Read through the processor's own interface from its ledger table, which every execution
    environment shares, as a real processor's books would be.
    """
    from card_tokens.processor import SandboxProcessor  # the layer is importable by now

    ledger = SandboxProcessor(os.environ["SANDBOX_LEDGER_TABLE_NAME"]).ledger()
    charges = [
        {
            "payment_id": entry.payment_id,
            "outcome": entry.result.outcome,
            "decline_code": entry.result.decline_code,
            "amount": entry.result.amount,
            "currency": entry.result.currency,
            "last4": entry.last4,
        }
        for entry in ledger
    ]
    body = json.dumps({"charges": charges}).encode()
    return GatewayResponse(200, [("content-type", "application/json")], body)


def environments_report(functions: Mapping[str, LocalFunction]) -> GatewayResponse:
    """Each function's execution environments: how many, their pids, invocations, busy."""
    report = {
        logical_id: function.environments.snapshot()
        for logical_id, function in functions.items()
        if function.environments is not None
    }
    body = json.dumps({"functions": report}).encode()
    return GatewayResponse(200, [("content-type", "application/json")], body)


def checkout_page_file(path: str, publishable_key: str | None) -> GatewayResponse:
    """One file of the checkout page (web/checkout/), served at the API's own origin."""
    found = page_response(path, publishable_key)
    return NOT_FOUND if found is None else GatewayResponse(*found)


def checkout_page_routes(
    publishable_key: str | None = None,
) -> dict[tuple[str, str], Callable[[], GatewayResponse]]:
    return {
        ("GET", path): functools.partial(checkout_page_file, path, publishable_key)
        for path in PAGE_FILES
    }


SAMPLE_CARD_REQUEST = {
    name: value for name, value in SAMPLE_CARD.items() if name != "cardholder_name"
}


def curl_example(base_url: str, publishable_key: str | None = None) -> str:
    """The one line of the banner that holds a (test) card number, so the log scan can drop it."""
    body = json.dumps(SAMPLE_CARD_REQUEST)
    key = f" -H 'Authorization: Bearer {publishable_key}'" if publishable_key else ""
    return (
        f"  curl -s -X POST {base_url}/tokens{key} -H 'Content-Type: application/json' -d '{body}'"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__)
    parser.add_argument("--port", type=int, default=3000, help="API port (default 3000)")
    parser.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1)")
    parser.add_argument("--moto-port", type=int, default=5005, help="AWS emulator port (5005)")
    parser.add_argument(
        "--moto-host",
        default="127.0.0.1",
        help="AWS emulator address; 0.0.0.0 lets `sam local invoke` containers reach it",
    )
    parser.add_argument("--stack-name", default=STACK_NAME, help=f"default {STACK_NAME}")
    parser.add_argument(
        "--key-cache-seconds",
        type=int,
        default=LOCAL_KEY_CACHE_SECONDS,
        help="how long the functions cache keys (AWS: 300); short so `make rotate` shows at once",
    )
    parser.add_argument(
        "--merchant-cache-seconds",
        type=int,
        default=LOCAL_MERCHANT_CACHE_SECONDS,
        help="how long the functions cache the merchant registry (AWS: 60); 0 by default here",
    )
    add_credentials_option(parser)
    parser.add_argument(
        "--single-caller",
        action="store_true",
        help="register no demo merchant: the deployment serves one caller, as with an empty "
        "registry on AWS",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print the functions' own logs (Powertools JSON lines, EMF metrics), as "
        "CloudWatch Logs gets them; by default only one access line per request",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="execution environments (worker processes) each function may use at once, like "
        f"Lambda's reserved concurrency (default {DEFAULT_CONCURRENCY}); more requests wait",
    )
    parser.add_argument(
        "--aws-endpoint-url",
        type=_endpoint_url,
        metavar="URL",
        help="use this AWS endpoint (a moto server or LocalStack you run, the fault proxy) "
        "instead of starting moto; the stack's resources are created there, or reused if a "
        "previous run created them all",
    )
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _endpoint_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError("expected http://host:port or https://host")
    return text.rstrip("/")


class StackConflictError(RuntimeError):
    """The endpoint holds some, not all, of the stack's resources: neither create nor reuse."""


class EndpointUnreachableError(RuntimeError):
    """Nothing listens at the AWS endpoint given."""


def resources_on_endpoint(stack_name: str, template: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The stack's named resources (tables, secrets, key alias) found there, and missing."""
    names = named_resolver(stack_name, template).refs
    present: list[str] = []
    missing: list[str] = []
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for logical_id in resources_of_type(template, TABLE):
        found = _exists(dynamodb.describe_table, TableName=names[logical_id])
        (present if found else missing).append(names[logical_id])
    secrets = boto3.client("secretsmanager", region_name=REGION)
    for logical_id in resources_of_type(template, SECRET):
        found = _exists(secrets.describe_secret, SecretId=names[logical_id])
        (present if found else missing).append(names[logical_id])
    aliases = {
        alias["AliasName"]
        for page in boto3.client("kms", region_name=REGION).get_paginator("list_aliases").paginate()
        for alias in page["Aliases"]
    }
    for logical_id in resources_of_type(template, KMS_ALIAS):
        (present if names[logical_id] in aliases else missing).append(names[logical_id])
    return present, missing


def _exists(describe: Callable[..., Any], **request: str) -> bool:
    try:
        describe(**request)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ResourceNotFoundException", "NotFoundException"):
            return False
        raise
    return True


def check_reachable(endpoint: str, timeout: float = 3.0) -> None:
    """Fail at once if nothing listens there (boto3 would retry for half a minute)."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except OSError as error:
        raise EndpointUnreachableError(
            f"nothing answered at {endpoint} ({error.strerror or type(error).__name__}): "
            "start your emulator there, or give another --aws-endpoint-url."
        ) from error


def provision_or_reuse(
    stack_name: str, template: dict[str, Any], endpoint: str
) -> tuple[LocalStack, bool]:
    """The stack on an endpoint this process did not start: created, or reused (True)."""
    check_reachable(endpoint)
    present, missing = resources_on_endpoint(stack_name, template)
    if not present:
        return provision_stack(stack_name, template), False
    if missing:
        raise StackConflictError(
            f"{endpoint} holds {len(present)} of the {len(present) + len(missing)} resources of "
            f"stack '{stack_name}' ({missing[0]} is missing), perhaps from an interrupted run: "
            "choose another --stack-name, or restart that emulator."
        )
    return discover_stack(stack_name, template), True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Keep each log line whole and in order when stdout is a pipe or a file, and written with
    # one write call, as the execution environments (other processes) write to it too.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]
    template = load_deployed_template()
    routes = routes_from_template(template)
    functions = functions_from_template(template, args.stack_name)
    for function in functions.values():
        function.check()
    credentials = CredentialsFile(args.credentials_file)
    api = LocalRestApi(
        routes,
        {name: function.invoke for name, function in functions.items()},
        local_routes={
            ("GET", LEDGER_PATH): sandbox_ledger,
            ("GET", ENVIRONMENTS_PATH): functools.partial(environments_report, functions),
            **checkout_page_routes(),
        },
        authorize=IamAuthorizer(credentials, REGION, DEMO_PROFILE),
    )
    external = args.aws_endpoint_url
    try:
        if external is None:
            check_port_free(args.moto_host, args.moto_port, "AWS emulator (moto)", "--moto-port")
        # Bound now, before anything slow, so a taken port fails at once.
        server = GatewayServer((args.host, args.port), api)
    except OSError as error:
        print(f"error: {_listen_error(error, args)}", file=sys.stderr)
        return EXIT_PORT_IN_USE

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    print(
        f"Starting the local stack: {'an AWS emulator, ' if external is None else ''}"
        "the resources of template.yaml, the first signing key…",
        flush=True,
    )
    moto = None
    if external is None:
        try:
            moto = start_moto(args.moto_host, args.moto_port)
        except PortInUseError as error:
            server.server_close()
            print(f"error: {error}", file=sys.stderr)
            return EXIT_PORT_IN_USE
    moto_url = f"http://{args.moto_host}:{args.moto_port}"
    endpoint = external or moto_url.replace("0.0.0.0", "127.0.0.1")  # noqa: S104 - no bind
    serving: threading.Thread | None = None
    try:
        use_local_aws(endpoint)
        # What every execution environment starts from; each adds its own function's variables.
        base_environment = dict(os.environ)
        provisioned = _provision(args, template, endpoint)
        if isinstance(provisioned, int):
            return provisioned
        stack, reused = provisioned
        # The demo caller: a local IAM user whether or not a merchant is registered for it.
        credentials.ensure(DEMO_PROFILE)
        demo = None
        if not args.single_caller:
            demo = _demo_merchant(args, credentials)
            api.local_routes.update(checkout_page_routes(demo.publishable_key))
        _start_functions(args, template, stack, functions, base_environment)
        serving = threading.Thread(target=server.serve_forever, name="gateway", daemon=True)
        serving.start()
        print_banner(args, routes_text(routes), endpoint if external else moto_url, reused, demo)
        stop.wait()
        print("Stopping.", flush=True)
    finally:
        if serving is not None:
            server.shutdown()
        server.server_close()
        close_all([f.environments for f in functions.values() if f.environments is not None])
        if moto is not None:
            moto.stop()
    return 0


def _listen_error(error: OSError, args: argparse.Namespace) -> str:
    """What to tell the user when the emulator's or the API's address cannot be taken."""
    if isinstance(error, PortInUseError):
        return str(error)
    if error.errno == errno.EADDRINUSE:
        return str(PortInUseError(args.host, args.port, "API", "--port"))
    return (
        f"cannot listen on {args.host}:{args.port} ({error.strerror}). "
        "Choose another address or port with --host/--port."
    )


def _provision(
    args: argparse.Namespace, template: dict[str, Any], endpoint: str
) -> tuple[LocalStack, bool] | int:
    """The stack's resources (and whether they were there already), or the exit code."""
    external = args.aws_endpoint_url
    try:
        if external is None:
            return provision_stack(args.stack_name, template), False
        return provision_or_reuse(args.stack_name, template, external)
    except (StackConflictError, EndpointUnreachableError) as error:
        print(f"error: {error}", file=sys.stderr)
    except (BotoCoreError, ClientError) as error:
        print(
            f"error: provisioning the stack on {endpoint} failed "
            f"({type(error).__name__}: {error}). Is an AWS emulator listening there?",
            file=sys.stderr,
        )
    return EXIT_AWS_ENDPOINT


def _demo_merchant(args: argparse.Namespace, credentials: CredentialsFile) -> LocalMerchant:
    """The demo merchant, allowed to tokenize from the checkout page this stack serves, as a
    browser on this machine opens it (the registry takes plain http only for this machine)."""
    origins = [f"http://127.0.0.1:{args.port}", f"http://localhost:{args.port}"]
    return demo_merchant(
        origins,
        stack_name=args.stack_name,
        dynamodb_client=boto3.client("dynamodb", region_name=REGION),
        credentials=credentials,
    )


def _start_functions(
    args: argparse.Namespace,
    template: dict[str, Any],
    stack: LocalStack,
    functions: Mapping[str, LocalFunction],
    base_environment: dict[str, str],
) -> None:
    """Each function's execution environments, then a first signing key through rotation."""
    # This process reads the sandbox ledger itself (LEDGER_PATH): it needs the variables.
    os.environ.update(stack.environment)
    put_layers_on_path(template)
    python_path = layer_paths(template)
    for logical_id, function in functions.items():
        variables = {
            **base_environment,
            **stack.function_environments[logical_id],
            "POWERTOOLS_PARAMETERS_MAX_AGE": str(args.key_cache_seconds),
            "MERCHANT_CACHE_SECONDS": str(args.merchant_cache_seconds),
        }
        function.run_in_environments(
            variables, args.concurrency, python_path, function_logs=args.verbose
        )
    rotate_all(template, stack.resolver.refs, functions)


def routes_text(routes: list[Route]) -> list[str]:
    return [f"  {route.route_key:<32} {route.function}" for route in routes]


_DEMO_KEY_LINE = re.compile(r"^  Demo merchant mer_\w+: publishable key (pk_\w+)$", re.MULTILINE)


def banner_publishable_key(output: str) -> str | None:
    """The demo merchant's publishable key, as the banner (merchant_lines) shows it."""
    found = _DEMO_KEY_LINE.search(output)
    return found.group(1) if found else None


def merchant_lines(args: argparse.Namespace, demo: LocalMerchant | None) -> list[str]:
    """What the banner says about merchants: the demo one's key and profile, or none."""
    if demo is None:
        return [
            "  Merchants: none (--single-caller): tokens name no merchant, any caller may pay;",
            f"    /payments: SigV4 with profile {DEMO_PROFILE} in {args.credentials_file}, or "
            "unsigned (a local-only convenience: on AWS that gets 403)",
        ]
    return [
        f"  Demo merchant {demo.merchant_id}: publishable key {demo.publishable_key}",
        f"    (POST /tokens: Authorization: Bearer {demo.publishable_key}; allowed origins "
        f"{', '.join(demo.origins)})",
        f"    /payments: SigV4 with profile {demo.profile} in {args.credentials_file} "
        "(AWS_SHARED_CREDENTIALS_FILE); unsigned requests count as the demo merchant's, "
        "a local-only convenience (on AWS they get 403)",
    ]


def print_banner(
    args: argparse.Namespace,
    routes: list[str],
    aws_url: str,
    reused: bool = False,
    demo: LocalMerchant | None = None,
) -> None:
    base_url = f"http://{args.host}:{args.port}"
    if args.aws_endpoint_url is None:
        aws_lines = [
            f"  AWS emulator (moto): {aws_url}   (KMS, Secrets Manager, DynamoDB; in memory)"
        ]
    else:
        aws_lines = [
            f"  AWS endpoint: {aws_url}   (given; "
            + ("reused the stack's resources there)" if reused else "the stack was created there)"),
            "  The moto fixes (local/moto_fixes.py) apply only to a moto this process starts;"
            " for a moto of your own, run `python -m local.emulator`.",
        ]
    lines = [
        f"card-tokens local stack '{args.stack_name}' on {base_url}",
        *aws_lines,
        f"  Execution environments: up to {args.concurrency} per function (--concurrency), "
        f"each a worker process started on demand; see {base_url}{ENVIRONMENTS_PATH}",
        f"  Checkout page: {base_url}/",
        *merchant_lines(args, demo),
        "  Logs: "
        + (
            "one access line per request, and the functions' own JSON logs and metrics"
            if args.verbose
            else "one access line per request (--verbose, or make run VERBOSE=1, adds the "
            "functions' JSON logs)"
        ),
        "Routes:",
        *routes,
        "Try:",
        curl_example(base_url, demo.publishable_key if demo else None),
        "Ctrl-C stops it.",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
