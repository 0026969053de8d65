"""events/ holds one payload-2.0 event per route of the template, and env.json matches it."""

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


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return document


def test_there_is_one_event_file_per_route() -> None:
    route_keys = {load(name)["routeKey"] for name in ROUTE_EVENTS}

    assert route_keys == {route.route_key for route in ROUTES}


@pytest.mark.parametrize("name", ROUTE_EVENTS)
def test_each_event_file_is_an_http_api_event_its_route_serves(name: str) -> None:
    event = load(name)

    found = find_route(ROUTES, event["requestContext"]["http"]["method"], event["rawPath"])

    assert event["version"] == "2.0"
    assert found is not None
    assert found[0].route_key == event["routeKey"] == event["requestContext"]["routeKey"]
    assert event.get("pathParameters", {}) == found[1]


def test_the_payment_event_carries_a_token_amount_reference_and_idempotency_key() -> None:
    event = load("process_payment.json")
    body = json.loads(event["body"])

    assert body["token"].count(".") == 2
    assert (body["amount"], body["currency"], body["reference"]) == (1999, "EUR", "order-1234")
    assert event["headers"]["idempotency-key"]


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
    assert event["routeKey"] == "GET /payments/{payment_id}"


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
    paths[0].write_text('{"routeKey": "GET /.well-known/jwks.json"}\n')
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
