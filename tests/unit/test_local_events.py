"""events/ holds one payload-1.0 event per route of the template, and env.json matches it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local.cfn import load_deployed_template
from local.events import EVENTS_DIR, env_json, report_written, sample_event, sample_requests
from local.http_api import find_route, routes_from_template

ROUTES = routes_from_template(load_deployed_template())
ROUTE_EVENTS = ["issue_token.json", "process_payment.json", "get_payment.json", "jwks.json"]
# Routes with no sample event: the CORS preflight of POST /tokens carries no data of its own.
UNSAMPLED_ROUTES = {"OPTIONS /tokens"}


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return document


def route_key(event: dict[str, Any]) -> str:
    return f"{event['httpMethod']} {event['resource']}"


def test_there_is_one_event_file_per_route() -> None:
    route_keys = {route_key(load(name)) for name in ROUTE_EVENTS}

    assert route_keys | UNSAMPLED_ROUTES == {route.route_key for route in ROUTES}


@pytest.mark.parametrize("name", ROUTE_EVENTS)
def test_each_event_file_is_a_rest_api_event_its_route_serves(name: str) -> None:
    event = load(name)

    found = find_route(ROUTES, event["httpMethod"], event["path"])

    assert "version" not in event  # payload 1.0 has none
    assert found is not None
    assert found[0].route_key == route_key(event)
    assert event["requestContext"]["resourcePath"] == event["resource"]
    assert event["pathParameters"] == (found[1] or None)
    # Header names as a client sends them: the functions must look them up case-insensitively.
    assert "Host" in event["headers"]
    assert event["multiValueHeaders"]["Host"] == [event["headers"]["Host"]]


def test_the_payment_event_carries_a_token_amount_reference_and_idempotency_key() -> None:
    event = load("process_payment.json")
    body = json.loads(event["body"])

    assert body["token"].count(".") == 2
    assert (body["amount"], body["currency"], body["reference"]) == (1999, "EUR", "order-1234")
    assert event["headers"]["Idempotency-Key"]
    assert event["multiValueHeaders"]["Idempotency-Key"] == [event["headers"]["Idempotency-Key"]]


def test_the_issue_event_holds_the_sample_visa_card() -> None:
    body = json.loads(load("issue_token.json")["body"])

    assert body["card_number"] == "4242 4242 4242 4242"
    assert (body["exp_month"], body["exp_year"], body["cvv"]) == (12, 2030, "123")


def test_env_json_is_what_the_generator_writes_for_the_current_template() -> None:
    # After a template change: python -m local.events --env-only
    assert load("env.json") == env_json()


def test_env_json_points_every_function_at_the_emulator_from_docker() -> None:
    environments = env_json()

    assert set(environments) == {
        "IssueTokenFunction",
        "ProcessPaymentFunction",
        "PublishJwksFunction",
        "RotateSigningKeyFunction",
        "ReconcilePaymentsFunction",
    }
    assert {env["AWS_ENDPOINT_URL"] for env in environments.values()} == {
        "http://host.docker.internal:5005"
    }
    assert environments["IssueTokenFunction"]["TOKEN_TABLE_NAME"] == "card-tokens-local-TokenTable"
    assert (
        environments["ReconcilePaymentsFunction"]["SANDBOX_LEDGER_TABLE_NAME"]
        == environments["ProcessPaymentFunction"]["SANDBOX_LEDGER_TABLE_NAME"]
        == "card-tokens-local-SandboxLedgerTable"
    )


def test_the_generator_builds_events_with_the_stacks_own_builder() -> None:
    requests = sample_requests("a.b.c", "pay_x")

    event = sample_event(requests["get_payment.json"], ROUTES)

    assert event["pathParameters"] == {"payment_id": "pay_x"}
    assert route_key(event) == "GET /payments/{payment_id}"


def test_make_events_passes_the_emulator_port_on_to_env_json() -> None:
    # `make events MOTO_PORT=...` once wrote the default port into events/env.json.
    root = Path(__file__).resolve().parents[2]
    dry_run = subprocess.run(
        ["make", "-n", "-C", str(root), "events", "PORT=3100", "MOTO_PORT=6006"],
        capture_output=True,
        text=True,
        check=True,
    )
    command = [line for line in dry_run.stdout.splitlines() if "local.events" in line]
    assert command, dry_run.stdout
    assert "--port 3100" in command[-1]
    assert "--moto-port 6006" in command[-1]


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_make_events_says_the_files_are_tracked_and_which_changed(tmp_path: Path) -> None:
    # Given a work tree whose events/ is committed
    events = tmp_path / "events"
    events.mkdir()
    paths = [events / "jwks.json", events / "env.json"]
    for path in paths:
        path.write_text("{}\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "events")
    # When one of them is rewritten with other content
    paths[0].write_text('{"resource": "/.well-known/jwks.json"}\n')
    report = report_written(paths, tmp_path)

    # Then the report names both files, says git tracks them, and shows the one that changed
    assert report.startswith("Rewrote 2 files that git tracks")
    assert "  events/jwks.json\n  events/env.json" in report
    assert "events/jwks.json | 2 +-" in report
    assert "env.json |" not in report
    assert "git checkout -- events/" in report
    # and says so when nothing changed
    git(tmp_path, "checkout", "--", "events/")
    assert "None differs from the committed ones." in report_written(paths, tmp_path)
