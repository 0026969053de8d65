"""Lambda execution environments for the local stack: one worker process each.

Lambda runs a function in execution environments. Each serves one invocation at a time, has
its own memory (module-level caches, clients, the Powertools logger) and its own cold start,
and is reused while it lives; when every environment of a function is busy, a new one starts,
up to the function's concurrency limit. `FunctionEnvironments` does the same with worker
processes (`python -m local.environments`, started by the stack, never by hand):

- a worker is started when an invocation finds every existing one busy, up to `max_environments`
  (then the invocation waits for one to be free), and is reused when idle;
- a worker imports the handler itself, with the function's own environment variables, and
  talks to the stack over two pipes of its own (JSON lines). Its stdout and stderr are the
  stack's: the function's log stream, as CloudWatch Logs would get it. With
  `function_logs=False` (make run's default, terse) its stdout, where Powertools writes its JSON
  logs and EMF metrics, goes nowhere; stderr (a traceback, a crash) is still the stack's;
- an invocation that outlives the function's Timeout gets its worker killed
  (`FunctionTimeoutError`); a new invocation starts a new environment, as in Lambda;
- a worker exits when the stack does: at the end of its request pipe, or, if it is busy
  then, when its parent process is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
# Lambda allows 10 s for a cold start's init phase; a loaded laptop starting several workers
# at once (each importing boto3, Powertools and cryptography) needs more.
INIT_TIMEOUT_SECONDS = 60.0
STOP_SECONDS = 5.0
_PARENT_CHECK_SECONDS = 0.2
_READ_CHUNK = 1 << 16


class FunctionError(Exception):
    """The invocation failed in the environment: the handler raised, or the runtime died."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details or message


class FunctionTimeoutError(FunctionError):
    """The invocation ran past the function's Timeout; its environment was killed."""


class EnvironmentsClosedError(RuntimeError):
    """The stack is stopping: no more invocations."""


@dataclass(frozen=True)
class FunctionSpec:
    """What a worker needs to load and run one function's handler."""

    logical_id: str
    function_name: str
    code_uri: str
    handler: str
    memory_mb: int
    timeout_seconds: float
    # Prepended to sys.path after the code: the layers, as /opt/python is in Lambda.
    python_path: tuple[str, ...] = ()


def lambda_variables(spec: FunctionSpec) -> dict[str, str]:
    """The variables the Lambda runtime sets in every execution environment of a function."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
        "_HANDLER": spec.handler,
    }


class _LineReader:
    """Reads newline-terminated messages from a pipe, with a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()

    def read_line(self, deadline: float) -> bytes | None:
        """One line without its newline; None at the end of the pipe; TimeoutError past deadline."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while (end := self._buffer.find(b"\n")) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not poller.poll(max(1, int(remaining * 1000))):
                continue
            chunk = os.read(self.fd, _READ_CHUNK)
            if not chunk:
                return None
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line


class ExecutionEnvironment:
    """One worker process that hosts one function, one invocation at a time."""

    def __init__(
        self,
        spec: FunctionSpec,
        number: int,
        variables: Mapping[str, str],
        *,
        function_logs: bool = True,
    ) -> None:
        self.spec = spec
        self.number = number
        self.invocations = 0
        self.busy = False
        requests_read, requests_write = os.pipe()
        responses_read, responses_write = os.pipe()
        try:
            self.process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                [
                    sys.executable,
                    "-m",
                    "local.environments",
                    "--requests-fd",
                    str(requests_read),
                    "--responses-fd",
                    str(responses_write),
                    "--parent-pid",
                    str(os.getpid()),
                ],
                cwd=ROOT,
                env={
                    **variables,
                    **lambda_variables(spec),
                    "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{number}",
                },
                stdin=subprocess.DEVNULL,
                stdout=None if function_logs else subprocess.DEVNULL,
                pass_fds=(requests_read, responses_write),
            )
        except BaseException:
            for fd in (requests_read, requests_write, responses_read, responses_write):
                os.close(fd)
            raise
        os.close(requests_read)
        os.close(responses_write)
        self._requests: IO[bytes] = os.fdopen(requests_write, "wb")
        self._responses = _LineReader(responses_read)
        self._responses_fd = responses_read
        self._stopped = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def initialise(self, timeout: float = INIT_TIMEOUT_SECONDS) -> None:
        """Send the function's spec and wait for the handler's import (the cold start)."""
        try:
            self._send({"spec": asdict(self.spec)})
            reply = self._receive(time.monotonic() + timeout)
        except TimeoutError:
            self.kill()
            raise FunctionError(
                f"{self.spec.logical_id}: init did not finish within {timeout:.0f} s"
            ) from None
        if "init_error" in reply:
            self.kill()
            raise FunctionError(
                f"{self.spec.logical_id}: init failed", str(reply["init_error"])
            ) from None

    def invoke(self, event: dict[str, Any]) -> Any:
        """The handler's result; FunctionError if it raised, FunctionTimeoutError past Timeout."""
        self.invocations += 1
        timeout = self.spec.timeout_seconds
        deadline = time.monotonic() + timeout
        try:
            self._send({"event": event})
            reply = self._receive(deadline)
        except TimeoutError:
            self.kill()
            raise FunctionTimeoutError(
                f"{self.spec.logical_id}: Task timed out after {timeout:.2f} seconds; "
                f"execution environment {self.number} (pid {self.pid}) was stopped"
            ) from None
        if "error" in reply:
            error = reply["error"]
            raise FunctionError(
                f"{self.spec.logical_id}: {error['type']}", str(error.get("traceback", ""))
            )
        return reply["result"]

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self._requests.write(json.dumps(message).encode() + b"\n")
            self._requests.flush()
        except (BrokenPipeError, ValueError):
            raise self._died() from None

    def _receive(self, deadline: float) -> dict[str, Any]:
        line = self._responses.read_line(deadline)
        if line is None:
            raise self._died()
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _died(self) -> FunctionError:
        try:
            code = self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.returncode
        self._close_pipes()
        return FunctionError(
            f"{self.spec.logical_id}: Runtime exited with code {code} "
            f"(execution environment {self.number}, pid {self.pid})"
        )

    def begin_stop(self) -> None:
        """Close the request pipe: an idle worker reads its end and exits."""
        with contextlib.suppress(OSError):
            self._requests.close()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        self.begin_stop()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_pipes()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(OSError):
            self._requests.close()
        with contextlib.suppress(OSError):
            os.close(self._responses_fd)


class FunctionEnvironments:
    """The execution environments of one function: started lazily, reused, at most `max`."""

    def __init__(
        self,
        spec: FunctionSpec,
        variables: Mapping[str, str],
        max_environments: int,
        *,
        init_timeout: float = INIT_TIMEOUT_SECONDS,
        function_logs: bool = True,
    ) -> None:
        if max_environments < 1:
            raise ValueError("a function needs at least one execution environment")
        self.spec = spec
        self.variables = dict(variables)
        self.max_environments = max_environments
        self.init_timeout = init_timeout
        self.function_logs = function_logs
        self._changed = threading.Condition()
        self._idle: list[ExecutionEnvironment] = []  # the most recently used last
        self._live: list[ExecutionEnvironment] = []
        self._starting = 0
        self._started = 0
        self._busy = 0
        self._peak_busy = 0
        self._closed = False

    def invoke(self, event: dict[str, Any]) -> Any:
        environment = self._acquire()
        keep = False
        try:
            result = environment.invoke(event)
            keep = True
            return result
        except FunctionTimeoutError:
            raise
        except FunctionError:
            # The handler raised: the runtime reports it and the environment lives on.
            keep = environment.process.poll() is None
            raise
        finally:
            self._release(environment, keep)

    def _acquire(self) -> ExecutionEnvironment:
        with self._changed:
            while True:
                if self._closed:
                    raise EnvironmentsClosedError(f"{self.spec.logical_id}: the stack is stopping")
                if self._idle:
                    environment = self._idle.pop()
                    self._mark_busy(environment)
                    return environment
                if len(self._live) + self._starting < self.max_environments:
                    self._starting += 1
                    self._started += 1
                    number = self._started
                    break
                self._changed.wait()
        started: ExecutionEnvironment | None = None
        try:
            started = ExecutionEnvironment(
                self.spec, number, self.variables, function_logs=self.function_logs
            )
            started.initialise(self.init_timeout)
        except BaseException:
            if started is not None and started.process.poll() is None:
                started.kill()
            with self._changed:
                self._starting -= 1
                self._changed.notify()
            raise
        with self._changed:
            self._starting -= 1
            self._live.append(started)
            self._mark_busy(started)
            closed = self.closed
        if closed:
            self._release(started, keep=False)
            raise EnvironmentsClosedError(f"{self.spec.logical_id}: the stack is stopping")
        return started

    @property
    def closed(self) -> bool:
        return self._closed

    def _mark_busy(self, environment: ExecutionEnvironment) -> None:
        environment.busy = True
        self._busy += 1
        self._peak_busy = max(self._peak_busy, self._busy)

    def _release(self, environment: ExecutionEnvironment, keep: bool) -> None:
        with self._changed:
            environment.busy = False
            self._busy -= 1
            keep = keep and not self._closed
            if keep:
                self._idle.append(environment)
            elif environment in self._live:
                self._live.remove(environment)
            self._changed.notify()
        if not keep:
            environment.stop()

    def snapshot(self) -> dict[str, Any]:
        """What runs now: for the stack's /_local/environments and the tests."""
        with self._changed:
            return {
                "max_environments": self.max_environments,
                "started": self._started,
                "busy": self._busy,
                "peak_busy": self._peak_busy,
                "environments": [
                    {
                        "number": environment.number,
                        "pid": environment.pid,
                        "invocations": environment.invocations,
                        "busy": environment.busy,
                    }
                    for environment in sorted(self._live, key=lambda e: e.number)
                ],
            }

    def close(self) -> None:
        """Stop every environment; a busy one is stopped when its invocation ends."""
        close_all([self])


def close_all(pools: Sequence[FunctionEnvironments]) -> None:
    """Stop the idle environments of every pool at once; busy ones stop as they finish."""
    stopping: list[ExecutionEnvironment] = []
    for pool in pools:
        with pool._changed:
            pool._closed = True
            stopping += pool._idle
            for environment in pool._idle:
                pool._live.remove(environment)
            pool._idle.clear()
            pool._changed.notify_all()
    for environment in stopping:
        environment.begin_stop()
    for environment in stopping:
        environment.stop()


# ---------------------------------------------------------------- the worker process


def _exit_with_parent(parent_pid: int) -> None:
    """A busy worker does not read its pipe: it notices its parent's end this way."""
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_CHECK_SECONDS)
    os._exit(1)


def _load_handler(spec: FunctionSpec) -> Any:
    """Import the handler as Lambda does: the code first on sys.path, then the layers."""
    for path in reversed((spec.code_uri, *spec.python_path)):
        if path not in sys.path:
            sys.path.insert(0, path)
    module_name, _, attribute = spec.handler.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    if not callable(handler):
        raise TypeError(f"{spec.logical_id}: {spec.handler} is not callable")
    return handler


def _write(responses: IO[bytes], message: dict[str, Any]) -> None:
    responses.write(json.dumps(message).encode() + b"\n")
    responses.flush()


def worker_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.environments")
    parser.add_argument("--requests-fd", type=int, required=True)
    parser.add_argument("--responses-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    # Ctrl-C in a terminal reaches the whole process group: the stack stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() != args.parent_pid:
        return 1
    threading.Thread(target=_exit_with_parent, args=(args.parent_pid,), daemon=True).start()
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]

    from local.lambda_runtime import LambdaContext

    with (
        os.fdopen(args.requests_fd, "rb") as requests,
        os.fdopen(args.responses_fd, "wb") as responses,
    ):
        first = requests.readline()
        if not first:
            return 0
        spec_fields = json.loads(first)["spec"]
        spec = FunctionSpec(**{**spec_fields, "python_path": tuple(spec_fields["python_path"])})
        try:
            handler = _load_handler(spec)
        except Exception:  # noqa: BLE001 - Lambda reports an init error and stops
            _write(responses, {"init_error": traceback.format_exc()})
            return 1
        _write(responses, {"ready": True})
        for line in requests:
            event = json.loads(line)["event"]
            context = LambdaContext(spec.function_name, spec.memory_mb, spec.timeout_seconds)
            try:
                reply: dict[str, Any] = {"result": handler(event, context)}
                message = json.dumps(reply).encode()
            except Exception as error:  # noqa: BLE001 - the runtime returns it as the error
                message = json.dumps(
                    {
                        "error": {
                            "type": type(error).__name__,
                            "traceback": traceback.format_exc(),
                        }
                    }
                ).encode()
            responses.write(message + b"\n")
            responses.flush()
    # The stack is stopping. Lambda would just freeze the environment: skip the interpreter's
    # slow teardown (every module the handler imported), which would hold up the stack's exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(worker_main())
