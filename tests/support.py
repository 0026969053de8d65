"""Small helpers any test may use, whatever its folder."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run(
    command: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    cwd: Path = REPO_ROOT,
) -> subprocess.CompletedProcess[str]:
    """`command` run from the repository root, its output captured as text. The exit status is
    returned, not raised: the caller asserts on it with the output as the message."""
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server in this process on a free loopback port, for the block: its URL."""
    from moto.server import ThreadedMotoServer  # only the tests that serve one pay the import

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        # stop() ends serve_forever but leaves the listening socket open.
        inner = getattr(server, "_server", None)
        if inner is not None:
            inner.server_close()


# Every error answer openapi.yaml documents for POST /payments: (status, error code).
PAYMENT_ERRORS = frozenset(
    {
        (401, "invalid_token"),
        (409, "token_already_used"),
        (422, "idempotency_key_reused"),
        (502, "processor_error"),
        (503, "service_unavailable"),
        (503, "payment_in_progress"),
    }
)
