"""One cold start under one logging switch: every flow, with all output left on stdout/stderr.

tests/integration/test_log_switches.py runs `python -m tests.log_switches_child SWITCH RESULT` in
a fresh process whose environment already holds the switch's variables, as Lambda's does:
Powertools reads them when its Logger is built and when a handler is decorated, i.e. during the
cold start. AWS is moto in-process. What the scan must not find in the output (tokens, KMS data
keys, the signing key) is written to the RESULT file, never printed.

How each switch is put in place, mirroring the code that reads it (aws-lambda-powertools 3.x,
and the Lambda Python runtime interface client, awslambdaric):
- POWERTOOLS_LOGGER_LOG_EVENT=true: `Logger.inject_lambda_context` (logging/logger.py) resolves
  `log_event` when it decorates the handler: the argument if given, else this variable.
- POWERTOOLS_DEV=true: a resolver built without `debug` takes it from `powertools_dev_is_set()`
  (event_handler/api_gateway.py `_has_debug`), then prints every event; the Logger's formatter
  reads it too (pretty JSON and a UserWarning, at the Logger's creation).
- POWERTOOLS_LOG_LEVEL=DEBUG: `Logger._determine_log_level`, when the Logger is created.
- AWS_LAMBDA_LOG_LEVEL=DEBUG (ApplicationLogLevel; Lambda requires LogFormat JSON with it):
  awslambdaric bootstrap.py `_setup_logging`, before it imports the handler, adds to the root
  logger a handler writing JSON lines to stdout and sets the root level to the variable's value
  (lambda_runtime_log_utils.py `_get_log_level_from_env_var`: TRACE becomes DEBUG);
  `emulate_lambda_bootstrap_logging` does the same. Powertools also takes this variable as its
  Logger's level, ahead of POWERTOOLS_LOG_LEVEL (`_determine_log_level`).
- The root logger at DEBUG: `logging.basicConfig(level=DEBUG)` with a stderr handler, after the
  cold start, as code run later (or a debugging session) would do it.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_NAME = "card-tokens-logswitch"


@dataclass(frozen=True)
class Switch:
    variables: dict[str, str]
    root_debug: bool = False  # the root logger ends up at DEBUG with a handler
    powertools_debug: bool = False  # the service's Powertools Logger ends up at DEBUG


SWITCHES = {
    "log_event": Switch({"POWERTOOLS_LOGGER_LOG_EVENT": "true"}),
    "powertools_dev": Switch({"POWERTOOLS_DEV": "true"}),
    "powertools_log_level": Switch({"POWERTOOLS_LOG_LEVEL": "DEBUG"}, powertools_debug=True),
    "root_logger_debug": Switch({}, root_debug=True),
    "lambda_log_level": Switch(
        {"AWS_LAMBDA_LOG_LEVEL": "DEBUG", "AWS_LAMBDA_LOG_FORMAT": "JSON"},
        root_debug=True,
        powertools_debug=True,
    ),
}

# Sandbox cards (card_tokens.processor): approved, declined, "the processor fails", approved.
APPROVED = "4242424242424242"
DECLINED = "4000000000000002"
FAILING = "4000000000000119"
AMEX = "378282246310005"
CVVS = {APPROVED: "739", DECLINED: "418", FAILING: "562", AMEX: "6071"}
CARDHOLDER = "Ada Switch-Lovelace"
# Debug records as the AWS SDK and HTTP libraries write them (in Lambda urllib3 carries the real
# HTTP traffic; moto in-process answers before it). None may reach the output.
SDK_PROBE_LOGGERS = (
    "botocore.parsers",
    "boto3.resources.action",
    "urllib3.connectionpool",
    "s3transfer.tasks",
    "stripe",
)


def spaced(pan: str) -> str:
    return " ".join(pan[i : i + 4] for i in range(0, len(pan), 4))


@contextmanager
def quiet() -> Iterator[None]:
    """Test set-up and read-back only: nothing the harness itself does reaches the output."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "aws_request_id"}


class _LambdaJsonFormatter(logging.Formatter):
    """awslambdaric's JsonFormatter (lambda_runtime_log_utils.py): its fields, then any extra."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "requestId": getattr(record, "aws_request_id", ""),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and name not in document and value is not None:
                document[name] = value
        return json.dumps(document, ensure_ascii=False, default=str) + "\n"


def emulate_lambda_bootstrap_logging() -> None:
    """awslambdaric bootstrap.py `_setup_logging`, run before the handler module is imported."""
    raw = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    level = {None: "", "TRACE": "DEBUG"}.get(raw, raw or "").upper()
    handler = logging.StreamHandler(sys.stdout)  # StandardLogSink writes to stdout
    handler.terminator = ""  # the JSON formatter ends each line itself
    handler.setFormatter(_LambdaJsonFormatter())
    root = logging.getLogger()
    if level in logging.getLevelNamesMapping():
        root.setLevel(level)
    root.addHandler(handler)


@dataclass
class Run:
    switch: str
    marker: str = field(default_factory=lambda: f"logscan-event-{secrets.token_hex(8)}")
    statuses: dict[str, list[int]] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    data_keys: list[bytes] = field(default_factory=list)
    must_appear: dict[str, str] = field(default_factory=dict)
    must_not_appear: dict[str, str] = field(default_factory=dict)

    def check(self, name: str, expected: int, response: dict[str, Any]) -> dict[str, Any]:
        self.statuses[name] = [int(response["statusCode"]), expected]
        return response


class Functions:
    """Every functions/*/app.py, imported (a cold start); HTTP events go where the template says."""

    def __init__(self) -> None:
        from local.cfn import load_template
        from local.http_api import routes_from_template

        self.template = load_template()
        self.routes = routes_from_template(self.template)
        self.modules: dict[str, ModuleType] = {}
        for path in sorted((REPO_ROOT / "functions").glob("*/app.py")):
            self.modules[path.parent.name] = importlib.import_module(f"{path.parent.name}.app")

    def _function(self, logical_id: str) -> tuple[ModuleType, Any]:
        from local.lambda_runtime import LambdaContext

        properties = self.template["Resources"][logical_id]["Properties"]
        module = self.modules[Path(str(properties["CodeUri"])).name]
        timeout = int(properties.get("Timeout", 30))
        return module, LambdaContext(logical_id, int(properties.get("MemorySize", 512)), timeout)

    def logical_id(self, directory: str) -> str:
        for logical_id, resource in self.template["Resources"].items():
            code_uri = str(resource.get("Properties", {}).get("CodeUri", ""))
            if resource["Type"] == "AWS::Serverless::Function" and code_uri.rstrip("/").endswith(
                f"functions/{directory}"
            ):
                return str(logical_id)
        raise LookupError(f"no function in template.yaml has CodeUri functions/{directory}/")

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        module, context = self._function(logical_id)
        return module.lambda_handler(event, context)

    def http(self, event: dict[str, Any]) -> dict[str, Any]:
        from local.http_api import find_route

        found = find_route(self.routes, event["httpMethod"], event["path"])
        if found is None:
            raise LookupError(
                f"no route in template.yaml for {event['httpMethod']} {event['path']}"
            )
        response: dict[str, Any] = self.invoke(found[0].function, event)
        return response


def _marked(run: Run, event: dict[str, Any]) -> dict[str, Any]:
    # Only a whole event (or its headers) in the output can carry this marker.
    event["headers"]["x-logscan-event"] = run.marker
    return event


def _body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


@contextmanager
def failing(client: Any, event: str, error: Callable[[], Exception]) -> Iterator[None]:
    """Every call matching a botocore `before-call` event fails, as after all retries."""

    def fail(**_: Any) -> None:
        raise error()

    client.meta.events.register(event, fail)
    try:
        yield
    finally:
        client.meta.events.unregister(event, fail)


def run_flows(run: Run, functions: Functions) -> None:
    from botocore.exceptions import ClientError

    from card_tokens.aws import dynamodb_client, kms_client
    from local.rotation import rotate
    from local.sample_events import get_event, load_event, payment_event, token_event

    def issue(name: str, pan: str, *, expected: int = 201, shown: str | None = None) -> str:
        card = {"card_number": shown or pan, "cvv": CVVS[pan], "cardholder_name": CARDHOLDER}
        response = run.check(name, expected, functions.http(_marked(run, token_event(**card))))
        if response["statusCode"] != 201:
            return ""
        token: str = _body(response)["token"]
        run.tokens.append(token)
        return token

    def pay(name: str, token: str, expected: int, key: str | None = None, **fields: Any) -> Any:
        event = _marked(run, payment_event(token, idempotency_key=key, **fields))
        return run.check(name, expected, functions.http(event))

    throttled = lambda: ClientError(  # noqa: E731
        {"Error": {"Code": "ThrottlingException", "Message": "injected"}}, "Injected"
    )

    token = issue("issue approved (spaced PAN)", APPROVED, shown=spaced(APPROVED))
    paid = pay("pay approved", token, 201, key=f"{run.marker}-1")
    pay("idempotent replay", token, 201, key=f"{run.marker}-1")
    pay("token reuse", token, 409, key=f"{run.marker}-2", amount=8)
    pay("tampered token", token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"), 401)
    payment_id = _body(paid)["payment_id"]
    run.check("get payment", 200, functions.http(_marked(run, get_event(payment_id))))
    pay("pay declined", issue("issue declined (plain PAN)", DECLINED), 201)
    pay("processor failure", issue("issue processor-failure card", FAILING), 502)
    pay("pay approved (amex)", issue("issue amex", AMEX, shown=spaced(AMEX)), 201)
    run.check("jwks", 200, functions.http(_marked(run, load_event("jwks.json"))))
    bad = {"card_number": APPROVED[:-1] + "1", "cvv": CVVS[APPROVED], "cardholder_name": CARDHOLDER}
    run.check("invalid card number", 400, functions.http(_marked(run, token_event(**bad))))
    # A dependency fault: KMS throttled after botocore's retries, while issuing and paying.
    with failing(kms_client(), "before-call.kms.GenerateDataKey", throttled):
        issue("issue with KMS failing", APPROVED, expected=503)
    unpaid = issue("issue for KMS-failing payment", DECLINED)
    with failing(kms_client(), "before-call.kms.Decrypt", throttled):
        pay("pay with KMS failing", unpaid, 503)

    # An unexpected exception (the 500 path), whose message quotes card data.
    def unexpected() -> Exception:
        return RuntimeError(f"unexpected failure for {APPROVED} cvv {CVVS[APPROVED]}")

    with failing(dynamodb_client(), "before-call.dynamodb", unexpected):
        run.check("unexpected error", 500, functions.http(_marked(run, get_event(payment_id))))

    # The scheduled and rotation functions, each with a marked event.
    reconcile = functions.logical_id("reconcile_payments")
    scheduled = {"source": "aws.scheduler", "detail-type": "Scheduled Event", "id": run.marker}
    functions.invoke(reconcile, scheduled)
    rotation = functions.logical_id("rotate_signing_key")
    rotate(
        os.environ["SIGNING_KEY_SECRET_ID"],
        lambda event: functions.invoke(rotation, {**event, "LogscanEvent": run.marker}),
    )


def capture_data_keys(run: Run) -> None:
    """Every KMS plaintext data key the service receives, kept for the scan (never printed)."""
    from card_tokens.aws import kms_client

    def keep(parsed: dict[str, Any], **_: Any) -> None:
        plaintext = parsed.get("Plaintext")
        if isinstance(plaintext, bytes):
            run.data_keys.append(plaintext)

    for operation in ("GenerateDataKey", "Decrypt"):
        kms_client().meta.events.register(f"after-call.kms.{operation}", keep)


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def private_key_material() -> tuple[list[str], list[str]]:
    """The body lines of every private PEM in any secret, and their private JWK members."""
    import boto3
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    client = boto3.client("secretsmanager")
    pem_lines: list[str] = []
    jwk_members: list[str] = []
    for secret in client.list_secrets()["SecretList"]:
        versions = client.list_secret_version_ids(SecretId=secret["ARN"], IncludeDeprecated=True)
        for version in versions["Versions"]:
            value = client.get_secret_value(SecretId=secret["ARN"], VersionId=version["VersionId"])
            try:
                document = json.loads(value.get("SecretString") or "null")
            except ValueError:
                continue
            pem = document.get("private_key_pem") if isinstance(document, dict) else None
            if not isinstance(pem, str):
                continue
            pem_lines.extend(
                line for line in pem.splitlines() if line and not line.startswith("-----")
            )
            key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
            if isinstance(key, ec.EllipticCurvePrivateKey):
                # RFC 7518 §6.2.2.1: an EC `d` has the curve's fixed length (32 bytes).
                d = key.private_numbers().private_value.to_bytes(32, "big")
                jwk_members.append(base64.urlsafe_b64encode(d).rstrip(b"=").decode("ascii"))
            elif isinstance(key, rsa.RSAPrivateKey):
                numbers = key.private_numbers()
                jwk_members.extend(
                    _b64url_uint(n)
                    for n in (
                        numbers.d,
                        numbers.p,
                        numbers.q,
                        numbers.dmp1,
                        numbers.dmq1,
                        numbers.iqmp,
                    )
                )
    return pem_lines, jwk_members


def run_controls(run: Run, switch: Switch) -> None:
    """What the switch does to code left unprotected: proves it is on and its output is seen."""
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    from card_tokens.observability import logger
    from local.http_api import build_rest_event
    from local.lambda_runtime import LambdaContext

    context: Any = LambdaContext("LogscanControl", 128, 3)
    if "POWERTOOLS_LOGGER_LOG_EVENT" in switch.variables:
        canary = f"control-log-event-{secrets.token_hex(6)}"
        logger.inject_lambda_context(lambda event, context: None)({"control": canary}, context)
        run.must_appear["an event, through inject_lambda_context left to the variable"] = canary
    if "POWERTOOLS_DEV" in switch.variables:
        canary = f"control-dev-{secrets.token_hex(6)}"
        resolver = APIGatewayRestResolver()
        resolver.get("/logscan-control")(lambda: {})
        event = build_rest_event(
            method="GET",
            path="/logscan-control",
            resource="/logscan-control",
            headers=[("x-control", canary)],
        )
        resolver.resolve(event, context)
        run.must_appear["an event, printed by a resolver left to POWERTOOLS_DEV"] = canary
        run.must_appear["Powertools' POWERTOOLS_DEV warning"] = "POWERTOOLS_DEV environment"
    if switch.powertools_debug:
        canary = f"control-logger-debug-{secrets.token_hex(6)}"
        logger.debug("logscan control", extra={"control": canary})
        run.must_appear["a DEBUG line of the service's Logger"] = canary
    if switch.root_debug:
        canary = f"control-root-debug-{secrets.token_hex(6)}"
        logging.getLogger("logscan.control").debug("logscan control %s", canary)
        run.must_appear["a DEBUG line of a library logger left unpinned"] = canary
    for name in SDK_PROBE_LOGGERS:
        canary = f"probe-{name}-{secrets.token_hex(6)}"
        logging.getLogger(name).debug("logscan probe %s", canary)
        run.must_not_appear[f"a DEBUG record of {name}"] = canary


def main(argv: list[str]) -> int:
    switch_name, result_path = argv
    switch = SWITCHES[switch_name]
    if switch_name == "lambda_log_level":
        emulate_lambda_bootstrap_logging()

    from moto import mock_aws

    from local import moto_fixes
    from local.provision import provision_stack
    from local.rotation import rotate

    # The emulator's own DEBUG lines (DynamoDB expression parsing): moto is not in Lambda.
    logging.getLogger("moto").setLevel(logging.WARNING)
    run = Run(switch_name)
    with mock_aws():
        with quiet():
            moto_fixes.apply()
            stack = provision_stack(STACK_NAME)
            # The function's variables; the switch's own win (e.g. LogLevel=DEBUG in the template).
            os.environ.update(
                {k: v for k, v in stack.environment.items() if k not in switch.variables}
            )
            rotate(os.environ["SIGNING_KEY_SECRET_ID"])  # the first signing key, as `make run`
        functions = Functions()  # the cold start: its output is scanned too
        if switch_name == "root_logger_debug":
            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        capture_data_keys(run)
        run_flows(run, functions)
        run_controls(run, switch)
        with quiet():
            pem_lines, jwk_members = private_key_material()
    sys.stdout.flush()
    sys.stderr.flush()
    result = {
        "statuses": run.statuses,
        "marker": run.marker,
        "tokens": run.tokens,
        "data_keys": [base64.b64encode(key).decode("ascii") for key in run.data_keys],
        "pem_lines": pem_lines,
        "jwk_members": jwk_members,
        "must_appear": run.must_appear,
        "must_not_appear": run.must_not_appear,
    }
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
