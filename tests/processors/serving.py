"""A local fake's server, served on a thread and stopped however its test ends."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def serving(server: socketserver.BaseServer, lifetime: float) -> Iterator[None]:
    """Serves until the block ends, or by itself after `lifetime` seconds: a test that hangs
    still gets its port back. A short poll, since shutdown() waits for it once per fake."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    watchdog = threading.Timer(lifetime, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
