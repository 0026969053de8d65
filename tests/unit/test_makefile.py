"""The Makefile's setup: what `make run` installs (and says), the PYTHON check, `make help`.

Everything runs `make -n` (print, do not run) with a virtualenv path of the test's own (VENV=),
whose stamps the test sets, so nothing is installed and the repository's .venv is not touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, run_captured

PYTHON = sys.executable  # a Python 3.13: the one running the tests


def make(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.pop("PYTHON", None)
    return run_captured(["make", "--no-print-directory", *args], env=env, timeout=60)


def dry_run(venv: Path, *args: str) -> str:
    result = make("-n", f"VENV={venv}", f"PYTHON={PYTHON}", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def after_make_run(venv: Path) -> None:
    """The stamps `make run` leaves: the runtime and the CLI installed."""
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / ".installed-run").touch()
    (venv / "bin" / "card-tokens").touch()


def test_help_shows_the_port_not_a_make_variable() -> None:
    result = make("help")

    assert result.returncode == 0, result.stderr
    assert "$(" not in result.stdout
    assert "http://127.0.0.1:3000" in result.stdout
    assert "http://127.0.0.1:3001" in make("help", "PORT=3001").stdout
    assert "make invoke" in result.stdout


@pytest.fixture
def python_311(tmp_path: Path) -> Path:
    """Answers the Makefile's version question as a Python 3.11 would."""
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho 3.11.2\n")
    fake.chmod(0o755)
    return fake


def test_a_python_given_that_is_not_3_13_fails_naming_it(python_311: Path, tmp_path: Path) -> None:
    result = make("-n", "run", f"PYTHON={python_311}", f"VENV={tmp_path / 'venv'}")

    assert result.returncode != 0
    assert f"PYTHON={python_311} is Python 3.11.2, but this project needs Python 3.13" in (
        result.stderr
    )
    assert "-m venv" not in result.stdout


def test_a_python_given_that_does_not_run_fails_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-python"

    result = make("-n", "run", f"PYTHON={missing}", f"VENV={tmp_path / 'venv'}")

    assert result.returncode != 0
    assert f"PYTHON={missing} is not a Python that runs" in result.stderr


@pytest.mark.skipif(
    not Path("/usr/bin/python3").exists()
    or subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; sys.exit(sys.version_info[:2] == (3, 13))"],
        check=False,
    ).returncode
    != 0,
    reason="/usr/bin/python3 is missing or is a 3.13",
)
def test_the_systems_python3_is_refused_when_it_is_not_3_13(tmp_path: Path) -> None:
    result = make("-n", "run", "PYTHON=/usr/bin/python3", f"VENV={tmp_path / 'venv'}")

    assert result.returncode != 0
    assert "PYTHON=/usr/bin/python3 is Python 3." in result.stderr


def test_help_works_whatever_python_is_given(python_311: Path) -> None:
    assert make("help", f"PYTHON={python_311}").returncode == 0


def test_a_python_3_13_given_is_the_one_the_virtualenv_is_made_with(tmp_path: Path) -> None:
    commands = dry_run(tmp_path / "venv", "run")

    assert f"{sys.executable} -m venv {tmp_path / 'venv'}" in commands


def test_the_first_make_run_installs_the_runtime_and_the_cli_only_saying_so(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"

    commands = dry_run(venv, "run")

    assert "-r requirements-run.txt" in commands
    assert "--no-deps -e ." in commands
    assert "requirements-dev.txt" not in commands
    assert "--quiet" not in commands
    assert commands.count("--progress-bar off") == 2
    assert "Installing the runtime: 15 pinned packages" in commands
    assert "done in %.1f s" in commands
    assert commands.splitlines()[-1] == (
        f"{venv}/bin/python -m local.stack --port 3000 --moto-port 5005"
    )


def test_make_test_after_make_run_only_adds_the_developer_tools(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    after_make_run(venv)

    commands = dry_run(venv, "test")

    assert "-r requirements-dev.txt" in commands
    assert "-r requirements-run.txt" not in commands
    assert f"rm -rf {venv}" not in commands
    assert "-e ." not in commands


def test_make_run_after_make_test_installs_nothing(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    after_make_run(venv)
    (venv / ".installed-dev").touch()

    commands = dry_run(venv, "run", "VERBOSE=1")

    assert commands.splitlines() == [
        f"{venv}/bin/python -m local.stack --port 3000 --moto-port 5005 --verbose"
    ]


def test_requirements_dev_includes_the_run_requirements_which_pin_exactly() -> None:
    dev = (REPO_ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    run = (REPO_ROOT / "requirements-run.txt").read_text(encoding="utf-8").splitlines()
    pins = [line for line in run if line and not line.startswith(("#", "-r"))]

    assert "-r requirements-run.txt" in dev
    assert "-r layers/card_tokens/requirements.txt" in run
    assert pins == ["moto[server]==5.2.5", "PyYAML==6.0.4"]
    assert not set(pins) & set(dev)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (["EVENT=events/jwks.json"], "-m local.invoke events/jwks.json --moto-port 5005"),
        (
            ["FUNCTION=ReconcilePaymentsFunction", "MOTO_PORT=5006", "VERBOSE=1"],
            "-m local.invoke --function ReconcilePaymentsFunction --moto-port 5006 --verbose",
        ),
        (["EVENT=events/issue_token.json", "VERBOSE=0"], "-m local.invoke events/issue_token.json"),
    ],
)
def test_make_invoke_passes_event_function_port_and_verbose(
    tmp_path: Path, variables: list[str], expected: str
) -> None:
    venv = tmp_path / "venv"
    after_make_run(venv)

    (command,) = dry_run(venv, "invoke", *variables).splitlines()

    assert command.startswith(f"{venv}/bin/python {expected}")
    assert ("--verbose" in command) == ("VERBOSE=1" in variables)


def test_make_stripe_spec_check_without_a_spec_fails_saying_what_to_give(tmp_path: Path) -> None:
    result = make("-n", f"VENV={tmp_path / 'venv'}", f"PYTHON={PYTHON}", "stripe-spec-check")

    assert result.returncode != 0
    assert "STRIPE_SPEC is not set" in result.stderr
    assert "github.com/stripe/openapi" in result.stderr


def test_make_stripe_spec_check_runs_the_checker_on_the_spec_given(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    after_make_run(venv)
    (venv / ".installed-dev").touch()

    (command,) = dry_run(venv, "stripe-spec-check", "STRIPE_SPEC=/specs/spec3.json").splitlines()

    assert command == (
        f"PYTHONPATH=layers/card_tokens {venv}/bin/python"
        ' -m tests.processors.check_stripe_spec "/specs/spec3.json"'
    )
