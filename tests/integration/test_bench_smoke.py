"""A few-iteration run of `make bench`, so the benchmark keeps working as the code changes.

It checks that every figure is produced, and what must hold whatever the machine (which AWS
calls each route makes, that the floor makes the same ones). It never judges a timing: the
ratios are read from `make bench` on a quiet machine, not asserted by a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.floor import CONFIG as FLOOR_CONFIG
from bench.warm import ISSUE, PAY, PAY_NO_KEY, ROUTES, TUTORIAL_ISSUE, TUTORIAL_PAY
from card_tokens.aws import BOTO_CONFIG

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
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            *("--quick", "--skip-sam-build", "--cold-deps", "venv", "--out", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
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
        assert len(steps) == 9
        assert all(ms >= 0 for ms in steps.values())


def test_issuing_makes_two_aws_calls_and_no_secrets_manager_call_while_warm(
    bench_run: tuple[Path, Any],
) -> None:
    _, results = bench_run
    series = results["warm"]["series"]
    assert list(series[ISSUE]["calls"]) == ["dynamodb:PutItem x1, kms:GenerateDataKey x1"]
    for route in ROUTES:
        assert not any("secretsmanager" in pattern for pattern in series[route]["calls"])
    assert "secretsmanager:GetSecretValue x1" in results["warm"]["first_call"][ISSUE]


def test_paying_makes_its_documented_minimum_of_calls(bench_run: tuple[Path, Any]) -> None:
    _, results = bench_run
    series = results["warm"]["series"]
    assert list(series[PAY_NO_KEY]["calls"]) == [
        "dynamodb:PutItem x1, dynamodb:TransactWriteItems x1, "
        "dynamodb:UpdateItem x1, kms:Decrypt x1"
    ]
    assert list(series[PAY]["calls"]) == [
        "dynamodb:PutItem x2, dynamodb:TransactWriteItems x1, "
        "dynamodb:UpdateItem x2, kms:Decrypt x1"
    ]


def test_the_floor_makes_the_same_aws_calls_as_the_handler(bench_run: tuple[Path, Any]) -> None:
    _, results = bench_run
    series = results["warm"]["series"]
    for route in ROUTES:
        assert series[route]["calls"] == series[f"floor {route}"]["calls"]
        # The explicit hooks saw every call that any botocore session made.
        assert series[route]["calls"] == series[route]["calls_everywhere"]


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
