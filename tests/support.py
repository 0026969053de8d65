"""Helpers the suites share: child processes, a moto server of the test's own, the contract's
answers."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from moto.server import ThreadedMotoServer

from local import moto_fixes

REPO_ROOT = Path(__file__).resolve().parents[1]

# Every answer the contract (openapi.yaml) documents for POST /payments besides 201, as
# (status, error code).
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


def run_captured(
    command: Sequence[str | Path],
    *,
    cwd: Path = REPO_ROOT,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """The command's exit code and text output; the caller checks them (no check=True)."""
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=None if env is None else dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def moto_server(*, with_fixes: bool = True) -> Iterator[str]:
    """A moto server on a free loopback port in this process (with the project's moto fixes,
    as a developer runs one, unless told otherwise): its URL."""
    patched_here = moto_fixes.apply() if with_fixes else False
    werkzeug_log = logging.getLogger("werkzeug")
    level = werkzeug_log.level
    werkzeug_log.setLevel(logging.ERROR)
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
        werkzeug_log.setLevel(level)
        if patched_here:  # leave moto as whoever else patched it expects
            moto_fixes.remove()
