"""One cold start, run as a script in a fresh interpreter: import, then serve the first request.

Run by bench.cold as `python -I -S [-B] bench/cold_child.py SPEC_JSON`, so nothing is on
sys.path but the standard library and the folders the spec names (the Lambda task root and
/opt/python, or the floor's folder and its dependencies). It imports nothing else before the
clock starts, and prints one line `BENCH_RESULT {...}` at the end.
"""

import json
import sys
import time

started = time.perf_counter()
spec = json.loads(sys.argv[1])
sys.path[:0] = spec["paths"]


class Context:
    """What the Lambda runtime hands a handler (local.lambda_runtime.LambdaContext's attributes).

    Defined here because importing local.lambda_runtime would import boto3 before the clock.
    """

    def __init__(self, function_name: str, timeout: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.aws_request_id = "00000000-0000-4000-8000-000000000000"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "bench/cold"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


if spec["side"] == "parts":
    # Marginal import costs: each step imports its modules on top of all earlier steps.
    import importlib

    parts = []
    for label, modules in spec["steps"]:
        step_started = time.perf_counter()
        for module in modules:
            importlib.import_module(module)
        parts.append([label, time.perf_counter() - step_started])
    print("BENCH_RESULT " + json.dumps({"parts": parts, "status": 201}), flush=True)
    sys.exit(0)

if spec["side"] == "handler":
    import app  # the function's handler module, from the task root

    imported = time.perf_counter()
    response = app.lambda_handler(spec["event"], Context(spec["function_name"], spec["timeout"]))
else:
    from bench import floor

    imported = time.perf_counter()
    environment = spec["environment"]
    if spec["route"] == "issue":
        response = floor.FloorIssuer(environment)(spec["event"])
    else:
        response = floor.FloorCashier(environment).pay(spec["event"])
served = time.perf_counter()

print(
    "BENCH_RESULT "
    + json.dumps(
        {
            "import_s": imported - started,
            "first_request_s": served - imported,
            "status": response["statusCode"],
            "modules": len(sys.modules),
        }
    ),
    flush=True,
)
