"""Chaos over HTTP: the local stack's AWS calls go through the fault proxy, payments must hold.

A moto server (with the project's fixes) runs in this process; the fault proxy sits in front of
it, and the local stack (a subprocess) makes every AWS call through the proxy. The stack is
provisioned with the proxy passing everything; then, one mode at a time, a seeded share of its
AWS calls is faulted: delay (0..3 s, beyond botocore's 1 s read timeout), drop, reset after
forward (the write commits, the answer is lost), truncate (answer cut mid-body), hollow (200
with `{}`). Eight clients pay CHAOS_INTENTS intents per mode, each with its own token, a fixed
Idempotency-Key and body, retrying every 5xx and every connection error as the contract tells
them to, within a bounded time. Then the reconciler sweeps (its clock past the claim lease),
and the answers, the payment records, the token records and the sandbox ledger (read straight
from moto, never through the proxy) must agree: 0 doubled, 0 lost, 0 stuck, 0 answers outside
the contract. Everything binds 127.0.0.1 and stops by itself.

`make test` runs a short version; `make chaos` runs CHAOS_INTENTS=300 and writes the table to
CHAOS_REPORT.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from card_tokens_client.api import Reply
from local.emulator import local_aws_environment
from local.fault_proxy import Fault, FaultProxy
from local.intrinsics import REGION
from tests.cards import DECLINED_VISA, VISA
from tests.e2e.stack_process import RunningLocalStack
from tests.support import PAYMENT_ERRORS, REPO_ROOT, moto_server, run_captured

INTENTS = int(os.environ.get("CHAOS_INTENTS", "24"))
CLIENTS = 8
RATE = float(os.environ.get("CHAOS_RATE", "0.25"))
MAX_DELAY = 3.0
# The contract's promise: retries of one intent reach a final answer within bounded time.
INTENT_SECONDS = float(os.environ.get("CHAOS_INTENT_SECONDS", "120"))
RETRY_AFTER_CAP = 2.0
BACKOFF = 0.2
CLAIM_LEASE_SECONDS = 60
MODES = (
    Fault.DELAY,
    Fault.DROP,
    Fault.RESET_AFTER_FORWARD,
    Fault.TRUNCATE,
    Fault.HOLLOW,
)
SEEDS = {mode: 4100 + index for index, mode in enumerate(MODES)}
REPORT = os.environ.get("CHAOS_REPORT", "")

# POST /payments: (status, error code) of every answer the contract allows.
PAYMENT_ANSWERS = {(201, None), *PAYMENT_ERRORS}
TOKEN_ANSWERS = {(201, None), (503, "service_unavailable")}
FINAL = {201, 401, 409, 422}


# ---------------------------------------------------------------- what one client saw


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer from the stack (connection error, timeout)
    code: str | None
    retry_after: str | None
    body: Any = None
    error: str = ""


@dataclass
class Intent:
    index: int
    amount: int
    declined_card: bool
    key: str
    token: str | None = None
    jti: str | None = None
    issue_answers: list[Answer] = field(default_factory=list)
    pay_answers: list[Answer] = field(default_factory=list)

    @property
    def final(self) -> Answer | None:
        last = self.pay_answers[-1] if self.pay_answers else None
        return last if last is not None and last.status in FINAL else None


def answer_of(reply: Reply) -> Answer:
    try:
        body = reply.json()
    except ValueError:
        body = None
    return Answer(reply.status, reply.error_code, reply.headers.get("retry-after"), body)


def pause_after(answer: Answer) -> float:
    if answer.retry_after is not None:
        try:
            return min(max(float(answer.retry_after), 0.0), RETRY_AFTER_CAP)
        except ValueError:
            return BACKOFF
    return BACKOFF


def jti_of(token: str) -> str:
    claims = token.split(".")[1]
    document = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    return str(document["jti"])


def run_intent(stack: RunningLocalStack, intent: Intent, lock: threading.Lock) -> Intent:
    """Issue a token, then pay it with one key and body until a final answer or the deadline."""
    deadline = time.monotonic() + INTENT_SECONDS
    card = DECLINED_VISA if intent.declined_card else VISA
    while intent.token is None and time.monotonic() < deadline:
        try:
            answer = answer_of(stack.api.request("POST", "/tokens", card))
        except OSError as error:
            answer = Answer(None, None, None, error=type(error).__name__)
        intent.issue_answers.append(answer)
        if answer.status == 201:
            intent.token = str(answer.body["token"])
            intent.jti = jti_of(intent.token)
            with lock:
                stack.issued_tokens.append(intent.token)
        else:
            time.sleep(pause_after(answer))
    while intent.token is not None and time.monotonic() < deadline:
        try:
            answer = answer_of(stack.pay(intent.token, intent.amount, intent.key))
        except OSError as error:
            answer = Answer(None, None, None, error=type(error).__name__)
        intent.pay_answers.append(answer)
        if answer.status in FINAL:
            break
        time.sleep(pause_after(answer))
    return intent


# ---------------------------------------------------------------- the stack under chaos


@dataclass
class Chaos:
    moto_url: str
    proxy: FaultProxy
    stack: RunningLocalStack
    stack_name: str
    reconcile_output: list[str] = field(default_factory=list)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}"

    def dynamodb(self) -> Any:
        return boto3.client(
            "dynamodb",
            endpoint_url=self.moto_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def scan(self, logical_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self.dynamodb().get_paginator("scan")
        for page in paginator.paginate(TableName=self.table(logical_id), ConsistentRead=True):
            items.extend(page.get("Items", []))
        return items

    def reconcile(self) -> dict[str, int]:
        """One reconciler sweep against moto directly, its clock past every claim's lease."""
        script = (
            "import json, time\n"
            "from card_tokens.processor import SandboxProcessor\n"
            "from card_tokens.reconciliation import Reconciler\n"
            "from card_tokens.stores import DynamoDBPaymentStates\n"
            f"now = int(time.time()) + {CLAIM_LEASE_SECONDS + 1}\n"
            "states = DynamoDBPaymentStates(\n"
            f"    token_table={self.table('TokenTable')!r},\n"
            f"    payment_table={self.table('PaymentTable')!r},\n"
            f"    idempotency_table={self.table('IdempotencyTable')!r},\n"
            ")\n"
            f"processor = SandboxProcessor({self.table('SandboxLedgerTable')!r})\n"
            "outcomes = Reconciler(states=states, processor=processor, clock=lambda: now).run()\n"
            "print('RECONCILED ' + json.dumps(dict(outcomes)), flush=True)\n"
        )
        environment = {
            **os.environ,
            **local_aws_environment(self.moto_url),
            "PYTHONPATH": str(REPO_ROOT / "layers" / "card_tokens"),
            "POWERTOOLS_SERVICE_NAME": "card-tokens",
            "POWERTOOLS_METRICS_NAMESPACE": "CardTokens",
            "AWS_LAMBDA_FUNCTION_NAME": "ReconcilePaymentsFunction",
        }
        done = run_captured([sys.executable, "-c", script], env=environment)
        self.reconcile_output.append(done.stdout + done.stderr)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        line = next(x for x in done.stdout.splitlines() if x.startswith("RECONCILED "))
        outcomes: dict[str, int] = json.loads(line.removeprefix("RECONCILED "))
        return outcomes


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chaos]:
    with moto_server() as moto_url:
        proxy = FaultProxy(moto_url).start()
        stack_name = f"chaos-{uuid.uuid4().hex[:8]}"
        options = ("--aws-endpoint-url", proxy.url, "--stack-name", stack_name)
        try:
            stack = RunningLocalStack.start(
                tmp_path_factory.mktemp("chaos") / "stack.log",
                *options,
                "--concurrency",
                str(CLIENTS),
                moto_port=proxy.port,
            )
        except BaseException:
            proxy.stop()
            raise
        state = Chaos(moto_url, proxy, stack, stack_name)
        try:
            yield state
        finally:
            proxy.set_policy(Fault.PASS, 0.0)
            stack.stop()
            proxy.stop()
    print_and_report(state.rows)
    # Then: the stack stopped cleanly and nothing printed holds card data or a token.
    stack.stop_and_scan(*state.reconcile_output)


# ---------------------------------------------------------------- reconciliation


def outside_contract(intent: Intent) -> list[str]:
    found = []
    for answer in intent.issue_answers:
        if (answer.status, answer.code) not in TOKEN_ANSWERS:
            found.append(f"POST /tokens -> {answer.status} {answer.code or answer.error}")
        elif answer.status == 503 and answer.retry_after is None:
            found.append("POST /tokens -> 503 without Retry-After")
    for answer in intent.pay_answers:
        if (answer.status, answer.code) not in PAYMENT_ANSWERS:
            found.append(f"POST /payments -> {answer.status} {answer.code or answer.error}")
        elif answer.status == 503 and answer.retry_after is None:
            found.append(f"POST /payments -> 503 {answer.code} without Retry-After")
        elif answer.status == 201:
            body = answer.body if isinstance(answer.body, dict) else {}
            expected_status = "declined" if intent.declined_card else "approved"
            if (body.get("status"), body.get("amount")) != (expected_status, intent.amount):
                found.append(
                    f"POST /payments -> 201 with {body.get('status')} {body.get('amount')}"
                )
    return found


def check_mode(chaos: Chaos, intents: list[Intent]) -> dict[str, list[str]]:
    """Every broken invariant, by kind, after the reconciler's sweep."""
    ledger = Counter(item["idempotency_key"]["S"] for item in chaos.scan("SandboxLedgerTable"))
    charges = {item["idempotency_key"]["S"]: item for item in chaos.scan("SandboxLedgerTable")}
    payments = {item["payment_id"]["S"]: item for item in chaos.scan("PaymentTable")}
    tokens = {item["jti"]["S"]: item for item in chaos.scan("TokenTable")}
    found: dict[str, list[str]] = {
        "doubled": [],
        "lost": [],
        "stuck": [],
        "keys_left": [],
        "outside_contract": [],
        "gave_up": [],
    }
    for intent in intents:
        name = f"intent {intent.index}"
        found["outside_contract"] += [f"{name}: {what}" for what in outside_contract(intent)]
        if intent.jti is None:
            found["gave_up"].append(f"{name}: no token issued within {INTENT_SECONDS}s")
            continue
        final = intent.final
        if final is None:
            found["gave_up"].append(f"{name}: no final answer within {INTENT_SECONDS}s")
        paid = [a.body for a in intent.pay_answers if a.status == 201]
        if ledger[intent.jti] > 1 or any(body != paid[0] for body in paid):
            found["doubled"].append(f"{name}: {ledger[intent.jti]} charges, {len(paid)} 201s")
        charge = charges.get(intent.jti)
        token = tokens.get(intent.jti, {})
        # The payment's id is drawn at issue and kept in the token record (not derivable).
        record = payments.get(token.get("payment_id", {}).get("S", ""))
        if charge is not None:
            amount = int(charge["amount"]["N"])
            if record is None:
                found["lost"].append(f"{name}: charged, no payment record after reconciliation")
            elif (record["status"]["S"], int(record["amount"]["N"])) != (
                charge["outcome"]["S"],
                amount,
            ):
                found["lost"].append(f"{name}: payment record differs from the charge")
            if final is not None and final.status != 201:
                found["lost"].append(f"{name}: charged but told {final.status} {final.code}")
            if amount != intent.amount:
                found["lost"].append(f"{name}: charged {amount}, asked {intent.amount}")
        elif paid or record is not None:
            found["lost"].append(f"{name}: paid without a charge at the processor")
        elif final is not None:
            # A fresh token paid once, with one key and body: 201 is the only right end.
            found["outside_contract"].append(f"{name}: told {final.status} {final.code}, no charge")
        if token.get("status", {}).get("S") == "claimed":
            found["stuck"].append(f"{name}: token still claimed after reconciliation")
        if charge is None and token.get("status", {}).get("S") == "used":
            found["stuck"].append(f"{name}: token used without a charge")
    for jti, token in tokens.items():
        status = token.get("status", {}).get("S")
        if status in ("used", "expired") and "encrypted_data_key" in token:
            found["keys_left"].append(f"token {jti[:6]}..: {status} with its data key")
        if status == "claimed":
            found["stuck"].append(f"token {jti[:6]}..: still claimed after reconciliation")
    return found


def statuses(intents: list[Intent]) -> str:
    counted = Counter(
        str(answer.status) if answer.status is not None else "conn-error"
        for intent in intents
        for answer in intent.pay_answers
    )
    return ", ".join(f"{status}: {number}" for status, number in sorted(counted.items()))


# ---------------------------------------------------------------- the test


@pytest.mark.parametrize("mode", MODES, ids=[mode.value for mode in MODES])
def test_payments_hold_when_the_stacks_aws_calls_fail(chaos: Chaos, mode: Fault) -> None:
    # Given the proxy faulting a share of the stack's AWS calls in this mode
    before = chaos.proxy.stats()
    started = time.monotonic()
    chaos.proxy.set_policy(mode, RATE, seed=SEEDS[mode], max_delay=MAX_DELAY)
    intents = [
        Intent(
            index=index,
            amount=100 + index,
            declined_card=index % 4 == 3,
            key=f"chaos-{mode.value}-{index}-{uuid.uuid4().hex[:8]}",
        )
        for index in range(INTENTS)
    ]
    lock = threading.Lock()
    try:
        # When eight clients pay every intent, retrying as the contract says
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            done = list(pool.map(lambda intent: run_intent(chaos.stack, intent, lock), intents))
    finally:
        chaos.proxy.set_policy(Fault.PASS, 0.0)
    after = chaos.proxy.stats()
    fired = after.count(fault=mode.value) - before.count(fault=mode.value)
    calls = after.count() - before.count()
    # and the reconciler sweeps once every claim's lease has lapsed
    outcomes = chaos.reconcile()
    found = check_mode(chaos, done)
    chaos.rows[mode.value] = {
        "intents": len(done),
        "calls": calls,
        "fired": fired,
        "answers": statuses(done),
        "reconciled": sum(n for k, n in outcomes.items() if k in ("recorded", "released")),
        "seconds": round(time.monotonic() - started),
        **{kind: len(items) for kind, items in found.items()},
    }

    # Then the faults fired, and nothing was doubled, lost, stuck or outside the contract
    assert fired >= max(3, INTENTS // 2), f"{mode}: only {fired} faults in {calls} AWS calls"
    assert {kind: items for kind, items in found.items() if items} == {}


# ---------------------------------------------------------------- the table


COLUMNS = (
    ("mode", "mode"),
    ("intents", "intents"),
    ("AWS calls", "calls"),
    ("faults fired", "fired"),
    ("POST /payments answers", "answers"),
    ("reconciled", "reconciled"),
    ("gave up", "gave_up"),
    ("doubled", "doubled"),
    ("lost", "lost"),
    ("stuck", "stuck"),
    ("keys left", "keys_left"),
    ("outside contract", "outside_contract"),
    ("seconds", "seconds"),
)


def results_table(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for mode, row in rows.items():
        values = {"mode": mode, **row}
        lines.append("| " + " | ".join(str(values[key]) for _, key in COLUMNS) + " |")
    return "\n".join(lines)


def print_and_report(rows: dict[str, dict[str, Any]]) -> None:
    if not rows:
        return
    table = results_table(rows)
    print(f"\nchaos: {INTENTS} intents per mode, {CLIENTS} clients, rate {RATE}\n{table}")
    if REPORT:
        text = (
            "# Reliability: payments through a fault proxy\n\n"
            f"Measured by `make chaos` (tests/e2e/test_chaos.py): {INTENTS} payment intents per "
            f"mode, {CLIENTS} concurrent clients, a share of {RATE} of the local stack's AWS "
            f"calls faulted (seeded; delay 0-{MAX_DELAY:g} s), every 5xx and connection error "
            "retried with the same Idempotency-Key and body (Retry-After honoured, capped at "
            f"{RETRY_AFTER_CAP:g} s), one reconciler sweep after each mode, then checked "
            "against the sandbox ledger.\n\n"
            f"{table}\n"
        )
        Path(REPORT).write_text(text, encoding="utf-8")
