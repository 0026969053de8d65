"""`make run`: the template's API on http://127.0.0.1:3000, backed by an in-process moto server.

Starts moto, provisions the template's tables, key and secrets on it, runs the signing-key
rotation once (as the deploy does), then serves every HttpApi route of template.yaml through
a small stand-in for API Gateway that calls the real handlers in this process.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from local.cfn import load_deployed_template
from local.emulator import PortInUseError, check_port_free, start_moto, use_local_aws
from local.gateway import GatewayServer, LocalHttpApi
from local.http_api import NOT_FOUND, GatewayResponse, Route, routes_from_template
from local.lambda_runtime import functions_from_template, put_layers_on_path
from local.provision import STACK_NAME, provision_stack
from local.rotation import rotate_all
from web.checkout.page import PAGE_FILES, page_response

EXIT_PORT_IN_USE = 2
# Local only: the sandbox processor's own record of charges, for reconciliation tests.
LEDGER_PATH = "/_local/sandbox-ledger"


def sandbox_ledger() -> GatewayResponse:
    """Every charge the sandbox processor made: payment id, outcome, amount, currency, last4.

    Read through the processor's own interface from its ledger table, which every execution
    environment shares, as a real processor's books would be.
    """
    from card_tokens.processor import SandboxProcessor  # the layer is importable by now
    from card_tokens.records import payment_id_for

    ledger = SandboxProcessor(os.environ["SANDBOX_LEDGER_TABLE_NAME"]).ledger()
    charges = [
        {
            "payment_id": payment_id_for(entry.idempotency_key),
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


def checkout_page_file(path: str) -> GatewayResponse:
    """One file of the checkout page (web/checkout/), served at the API's own origin."""
    found = page_response(path)
    return NOT_FOUND if found is None else GatewayResponse(*found)


def checkout_page_routes() -> dict[tuple[str, str], Callable[[], GatewayResponse]]:
    return {("GET", path): functools.partial(checkout_page_file, path) for path in PAGE_FILES}


SAMPLE_CARD_REQUEST = {
    "card_number": "4242 4242 4242 4242",
    "exp_month": 12,
    "exp_year": 2030,
    "cvv": "123",
}


def curl_example(base_url: str) -> str:
    """The one line of the banner that holds a (test) card number, so the log scan can drop it."""
    body = json.dumps(SAMPLE_CARD_REQUEST)
    return f"  curl -s -X POST {base_url}/tokens -H 'Content-Type: application/json' -d '{body}'"


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
        default=5,
        help="how long the functions cache keys (AWS: 300); short so `make rotate` shows at once",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Keep each log line whole and in order when stdout is a pipe or a file.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    template = load_deployed_template()
    routes = routes_from_template(template)
    functions = functions_from_template(template, args.stack_name)
    api = LocalHttpApi(
        routes,
        {name: function.invoke for name, function in functions.items()},
        local_routes={("GET", LEDGER_PATH): sandbox_ledger, **checkout_page_routes()},
    )

    try:
        check_port_free(args.moto_host, args.moto_port, "AWS emulator (moto)", "--moto-port")
        # Bound now, before anything slow, so a taken port fails at once.
        server = GatewayServer((args.host, args.port), api)
    except PortInUseError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_PORT_IN_USE
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            error = PortInUseError(args.host, args.port, "API", "--port")
            print(f"error: {error}", file=sys.stderr)
        else:
            print(
                f"error: cannot listen on {args.host}:{args.port} ({error.strerror}). "
                "Choose another address or port with --host/--port.",
                file=sys.stderr,
            )
        return EXIT_PORT_IN_USE

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    moto_url = f"http://{args.moto_host}:{args.moto_port}"
    try:
        moto = start_moto(args.moto_host, args.moto_port)
    except PortInUseError as error:
        server.server_close()
        print(f"error: {error}", file=sys.stderr)
        return EXIT_PORT_IN_USE
    serving: threading.Thread | None = None
    try:
        use_local_aws(moto_url.replace("0.0.0.0", "127.0.0.1"))  # noqa: S104 - a URL, no bind
        stack = provision_stack(args.stack_name, template)
        # The functions read their configuration at cold start: set it before the first import.
        os.environ.update(stack.environment)
        os.environ["POWERTOOLS_PARAMETERS_MAX_AGE"] = str(args.key_cache_seconds)
        put_layers_on_path(template)
        for function in functions.values():
            function.load()
        rotate_all(template, stack.resolver.refs, functions)

        serving = threading.Thread(target=server.serve_forever, name="gateway", daemon=True)
        serving.start()
        print_banner(args, routes_text(routes), moto_url)
        stop.wait()
        print("Stopping.", flush=True)
    finally:
        if serving is not None:
            server.shutdown()
        server.server_close()
        moto.stop()
    return 0


def routes_text(routes: list[Route]) -> list[str]:
    return [f"  {route.route_key:<32} {route.function}" for route in routes]


def print_banner(args: argparse.Namespace, routes: list[str], moto_url: str) -> None:
    base_url = f"http://{args.host}:{args.port}"
    lines = [
        f"card-tokens local stack '{args.stack_name}' on {base_url}",
        f"  AWS emulator (moto): {moto_url}   (KMS, Secrets Manager, DynamoDB; in memory)",
        f"  Checkout page: {base_url}/",
        "Routes:",
        *routes,
        "Try:",
        curl_example(base_url),
        "Ctrl-C stops it.",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
