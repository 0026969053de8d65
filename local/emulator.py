"""The embedded AWS emulator (moto server) and the process environment that points boto3 at it.

`python -m local.emulator --port 5005` runs that emulator on its own, with the project's moto
fixes, for `make run AWS_ENDPOINT_URL=http://127.0.0.1:5005` (or the fault proxy) to use.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from unittest import mock

from moto import mock_aws
from moto.server import ThreadedMotoServer

from local import moto_fixes
from local.intrinsics import REGION

# Anything here could send a boto3 call somewhere other than the emulator, or with real keys.
_OUTSIDE_SETTINGS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


class PortInUseError(OSError):
    def __init__(self, host: str, port: int, what: str, option: str) -> None:
        super().__init__(
            f"port {port} on {host} is already in use, so the {what} cannot start there. "
            f"Stop whatever holds it (another `make run`?) or choose another port with {option}."
        )


def check_port_free(host: str, port: int, what: str, option: str) -> None:
    """Fail before starting anything if a port is taken (moto binds in a thread, too late)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUseError(host, port, what, option) from error


def in_process_aws_environment(function_name: str) -> dict[str, str]:
    """Fake credentials and region for moto in-process (mock_aws), as the tests and bench use."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        # Powertools idempotency keys its records by function name.
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
    }


@contextlib.contextmanager
def in_process_aws(function_name: str) -> Iterator[None]:
    """moto in this process (mock_aws) with fake credentials; the environment is restored after.

    No endpoint URL or profile survives inside it, so no call can leave for another endpoint.
    """
    with mock.patch.dict(os.environ):
        for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
            del os.environ[name]
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(in_process_aws_environment(function_name))
        with mock_aws():
            yield


def local_aws_environment(endpoint_url: str) -> dict[str, str]:
    """Variables that send every boto3 client in this process to the emulator, with fake keys."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        # ~/.aws/config may set per-service endpoints or credential processes: ignore it.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        # No X-Ray daemon locally: the Tracer would only print "failed to send" warnings.
        # Metrics stay on: their EMF lines go to stdout as in Lambda, where the log scan of
        # the e2e tests checks them for card data too (POWERTOOLS_METRICS_DISABLED=true mutes).
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


def use_local_aws(endpoint_url: str) -> None:
    """Point this process at the emulator and away from any real account."""
    for name in list(os.environ):
        if name in _OUTSIDE_SETTINGS or name.startswith("AWS_ENDPOINT_URL_"):
            del os.environ[name]
    os.environ.update(local_aws_environment(endpoint_url))


def start_moto(host: str, port: int) -> ThreadedMotoServer:
    """Start moto's server in a thread of this process, with the project's fixes applied."""
    check_port_free(host, port, "AWS emulator (moto)", "--moto-port")
    moto_fixes.apply()
    # One werkzeug access line per AWS call would bury the stack's own log.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.emulator",
        description="moto's server with the project's fixes (local/moto_fixes.py), until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    parser.add_argument("--port", type=int, default=5005, help="default 5005")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        server = start_moto(args.host, args.port)
    except PortInUseError as error:
        print(f"error: {error}".replace("--moto-port", "--port"), file=sys.stderr)
        return 2
    print(f"AWS emulator (moto, with local/moto_fixes.py) on http://{args.host}:{args.port}")
    print("Ctrl-C stops it.", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
