"""A few-iteration run of `make bench`, so the benchmark keeps working as the code changes.

It checks that every figure is produced, and what must hold whatever the machine (which AWS
calls each route makes, that the floor makes the same ones with the same expressions). It never
judges a timing: the ratios are read from `make bench` on a quiet machine, not asserted by a test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import floor
from bench.floor import CONFIG as FLOOR_CONFIG
from bench.warm import (
    GET,
    ISSUE,
    PAY,
    PAY_NO_KEY,
    REGISTRY_ROLE,
    REPLAY,
    ROUTES,
    TUTORIAL_ISSUE,
    TUTORIAL_PAY,
    registry_reads,
)
from card_tokens import config, payments, stores, tokens
from card_tokens.aws import BOTO_CONFIG
from tests.support import run_captured

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = (
    "## Targets",
    "## 1. Warm latency",
    "## 2. Against the tutorial baseline",
    "## 3. Cold start",
    "## 4. AWS requests per warm call",
    "## 5. Package size",
    "## 6. ES256 against RS256",
    "## 7. Where the time goes",
)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    # --cold-deps venv: the cold children use the dev venv's packages instead of a fresh
    # `pip install --target` of the layer's requirements, so the smoke run needs no download.
    options = ("--quick", "--skip-sam-build", "--cold-deps", "venv", "--out", str(out))
    done = run_captured([sys.executable, "-m", "bench.run", *options], cwd=ROOT, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_results_md_has_every_section_and_the_command(bench_run: tuple[Path, Any]) -> None:
    out, _ = bench_run
    text = (out / "results.md").read_text(encoding="utf-8")
    for heading in SECTIONS:
        assert heading in text
    assert "python -m bench.run --quick" in text
    assert "Skipped: not run (--skip-sam-build)" in text
    assert "nan" not in text.lower().split()


def test_chart_is_a_png(bench_run: tuple[Path, Any]) -> None:
    out, _ = bench_run
    chart = (out / "results.png").read_bytes()
    assert chart.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(chart) > 20_000  # six panels, not an empty canvas


def test_every_warm_figure_is_measured(bench_run: tuple[Path, Any]) -> None:
    _, results = bench_run
    series = results["warm"]["series"]
    names = [*ROUTES, *(f"floor {route}" for route in ROUTES), TUTORIAL_ISSUE, TUTORIAL_PAY]
    for name in names:
        summary = series[name]["summary"]
        assert summary["n"] == results["warm"]["iterations"]
        assert 0 < summary["median_ms"] <= summary["p99_ms"]
        assert 0 < series[name]["aws"]["median_ms"] < summary["p99_ms"]


def test_every_cold_start_figure_is_measured(bench_run: tuple[Path, Any]) -> None:
    _, results = bench_run
    cold = results["cold"]
    for variant in ("as_built", "precompiled"):
        for kind in ("handler:issue", "floor:issue", "handler:pay", "floor:pay"):
            (sample,) = cold["samples"][variant][kind]
            assert sample["import_s"] > 0
            assert sample["first_request_s"] > 0
            assert sample["status"] == 201
    profiles = cold["import_profiles"]["as_built"]
    assert "aws_lambda_powertools" in profiles["handler:issue"]["packages"]
    assert "aws_lambda_powertools" not in profiles["floor:issue"]["packages"]
    for variant in ("as_built", "precompiled"):
        steps = cold["import_steps"][variant]
        assert len(steps) == 8
        assert all(ms >= 0 for ms in steps.values())


# Every AWS call of each warm route: the service's own, and the processor's (the sandbox ledger).
# Exact, so that a call added to a route fails here before it reaches the report.
SERVICE_CALLS = {
    ISSUE: "dynamodb:PutItem x1, kms:GenerateDataKey x1",
    # TransactWriteItems (key record + claim), GetItem (the claim), Decrypt, TransactWriteItems
    # (payment + tombstone + the key's answer): 4, the issue's target (6 with Powertools).
    PAY: "dynamodb:GetItem x1, dynamodb:TransactWriteItems x2, kms:Decrypt x1",
    # UpdateItem (claim), Decrypt, TransactWriteItems (payment + tombstone): 3 (was 4).
    PAY_NO_KEY: "dynamodb:TransactWriteItems x1, dynamodb:UpdateItem x1, kms:Decrypt x1",
    # The claim's transaction fails on the key record and returns the stored answer.
    REPLAY: "dynamodb:TransactWriteItems x1",
    GET: "dynamodb:GetItem x1",
}
PROCESSOR_CALLS = {
    ISSUE: "none",
    PAY: "dynamodb:PutItem x1",
    PAY_NO_KEY: "dynamodb:PutItem x1",
    REPLAY: "none",
    GET: "none",
}


def test_every_route_makes_exactly_its_aws_calls(bench_run: tuple[Path, Any]) -> None:
    _, results = bench_run
    series = results["warm"]["series"]
    assert set(SERVICE_CALLS) == set(ROUTES)
    for route in ROUTES:
        assert list(series[route]["calls"]) == [SERVICE_CALLS[route]], route
        assert list(series[route]["processor_calls"]) == [PROCESSOR_CALLS[route]], route
        assert not any("secretsmanager" in pattern for pattern in series[route]["calls"])
    assert "secretsmanager:GetSecretValue x1" in results["warm"]["first_call"][ISSUE]["service"]


def test_a_warm_merchant_call_makes_no_registry_read(bench_run: tuple[Path, Any]) -> None:
    """The merchant check is cached: the first calls and those after the caches expired read
    the registry, a warm issue and a warm payment (the same merchant's) do not."""
    _, results = bench_run
    warm = results["warm"]
    assert warm["merchant_cache_seconds"] == config.MERCHANT_CACHE_SECONDS
    for cold in (warm["first_call"], warm["after_cache_expiry"]):
        # Issue: key# and merchant#; payment: principal# (its merchant# is cached by then or not).
        assert cold[ISSUE]["registry"] == "dynamodb:GetItem x2"
        assert cold[PAY]["registry"] in ("dynamodb:GetItem x1", "dynamodb:GetItem x2")
    for route in (ISSUE, PAY):
        handler = warm["requests"][route]["handler"]
        assert registry_reads(handler) == "none", route
        assert all(shape.get("table") != REGISTRY_ROLE for shape in handler), route


def test_the_report_states_the_registry_cache(bench_run: tuple[Path, Any]) -> None:
    out, _ = bench_run
    text = (out / "results.md").read_text(encoding="utf-8")
    assert "Warm payments and issues make no registry call" in text
    assert f"`MERCHANT_CACHE_SECONDS` ({config.MERCHANT_CACHE_SECONDS} s here)" in text
    (first_issue,) = [line for line in text.splitlines() if line.startswith(f"- first {ISSUE}: ")]
    assert first_issue.endswith("of which on the merchant registry: dynamodb:GetItem x2")


def test_the_report_states_the_call_targets(bench_run: tuple[Path, Any]) -> None:
    out, _ = bench_run
    text = (out / "results.md").read_text(encoding="utf-8")
    for route, most in ((PAY, "≤ 4 (was 6)"), (PAY_NO_KEY, "≤ 3 (was 4)")):
        (row,) = [line for line in text.splitlines() if line.startswith(f"| {route} | {most} |")]
        assert "**no**" not in row
    assert "not met" not in "".join(line for line in text.splitlines() if "AWS calls per" in line)


def test_the_floor_makes_the_same_aws_calls_as_the_handler(bench_run: tuple[Path, Any]) -> None:
    _, results = bench_run
    series = results["warm"]["series"]
    for route in ROUTES:
        for kind in ("calls", "processor_calls"):
            assert series[route][kind] == series[f"floor {route}"][kind], (route, kind)
            # The explicit hooks saw every call that any botocore session made.
            assert series[route][kind] == series[route][f"{kind}_everywhere"], (route, kind)


def test_the_floor_makes_the_same_requests_as_the_handler(bench_run: tuple[Path, Any]) -> None:
    """Expression by expression: the floor's copies of the layer's requests still agree."""
    _, results = bench_run
    requests = results["warm"]["requests"]
    assert set(requests) == set(ROUTES)
    for route in ROUTES:
        handler, floor_side = requests[route]["handler"], requests[route]["floor"]
        assert handler, route
        assert floor_side == handler, route


# The floor never imports card_tokens (its cold start would load the layer and Powertools), so
# it copies what it needs; each copy must equal its original.
FLOOR_COPIES = {
    "CLAIM_UPDATE": (stores, "_CLAIM_UPDATE"),
    "CLAIMABLE": (stores, "_CLAIMABLE"),
    "KEY_CLAIMABLE": (stores, "_KEY_CLAIMABLE"),
    "TOMBSTONE_UPDATE": (stores, "_TOMBSTONE_UPDATE"),
    "TOMBSTONE_CONDITION": (stores, "_TOMBSTONE_CONDITION"),
    "KEY_ANSWER_UPDATE": (stores, "_KEY_ANSWER_UPDATE"),
    "P256_ORDER": (tokens, "P256_ORDER"),
    "_IDEMPOTENCY_SECONDS": (stores, "IDEMPOTENCY_WINDOW_SECONDS"),
    "_TOMBSTONE_SECONDS": (stores, "TOMBSTONE_SECONDS"),
    "_SWEEP_SHARDS": (stores, "SWEEP_SHARDS"),
    "_CLOCK_LEEWAY_SECONDS": (config, "CLOCK_LEEWAY_SECONDS"),
    "_CLAIM_LEASE_SECONDS": (payments, "CLAIM_LEASE_SECONDS"),
}


@pytest.mark.parametrize("name", FLOOR_COPIES)
def test_each_floor_copy_matches_the_layer(name: str) -> None:
    module, original = FLOOR_COPIES[name]
    assert getattr(floor, name) == getattr(module, original)


def test_both_algorithms_are_measured(bench_run: tuple[Path, Any]) -> None:
    _, results = bench_run
    for alg in ("ES256", "RS256"):
        figures = results["signing"]["algorithms"][alg]
        for name in ("sign_token", "verify_token", "raw_sign", "raw_verify", "generate_key"):
            assert figures[name]["median_ms"] > 0


def test_the_floor_uses_the_layers_client_settings() -> None:
    assert FLOOR_CONFIG.retries == BOTO_CONFIG.retries
    assert FLOOR_CONFIG.connect_timeout == BOTO_CONFIG.connect_timeout
    assert FLOOR_CONFIG.read_timeout == BOTO_CONFIG.read_timeout
