"""`make audit` (.ci/audit.py): pip-audit --strict that never passes without an advisory database.

Offline and without pip-audit: the advisory services are made unreachable through a proxy on a
closed loopback port, or stood in for by an OSV stub on loopback, with a fake pip and a fake
pip-audit that answer what the test tells them to.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / ".ci" / "audit.py"
LAYER = "layers/card_tokens/requirements.txt"
AUDITED = [LAYER, "requirements-dev.txt", "requirements-scan.txt", "requirements-audit.txt"]
ALL_CLEAR = "No known vulnerabilities found"  # what pip-audit says even after skipping everything
PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)

# Stands in for both `python -m pip install --dry-run --report FILE` and pip-audit.
FAKE_TOOL = """\
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
def value(flag):
    return args[args.index(flag) + 1]
if args[:2] == ["-m", "pip"]:
    resolution = json.loads(os.environ["FAKE_RESOLUTION"])
    install = [{"metadata": {"name": n, "version": v}} for n, v in resolution]
    Path(value("--report")).write_text(json.dumps({"install": install}))
    sys.exit(int(os.environ.get("FAKE_PIP_EXIT", "0")))
record = {"argv": args, "requirements": Path(value("--requirement")).read_text()}
Path(os.environ["FAKE_RECORD"]).write_text(json.dumps(record))
if os.environ["FAKE_REPORT"]:
    Path(value("--output")).write_text(os.environ["FAKE_REPORT"])
code = int(os.environ.get("FAKE_EXIT", "0"))
print(os.environ.get("FAKE_STDERR", "No known vulnerabilities found" if code == 0 else ""),
      file=sys.stderr)
sys.exit(code)
"""


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    for name in ("NO_PROXY", "no_proxy", "PIP_AUDIT_OSV_URL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    return env


@pytest.fixture
def offline_env() -> Iterator[dict[str, str]]:
    """Every HTTP(S) request goes to a proxy on a loopback port that refuses connections."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
        proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
        yield base_env() | dict.fromkeys(PROXY_VARIABLES, proxy)


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def audit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(SCRIPT), *args], env)


def assert_says_no_database_answers(output: str) -> None:
    assert "no advisory database is reachable from here, so nothing was audited" in output
    for service in ("pypi: GET https://pypi.org/pypi/", "osv: POST https://api.osv.dev/v1/query"):
        assert service in output
    assert "esms: GET https://advisories.ecosyste.ms/" in output
    assert "refused" in output.lower()
    assert "What to do: run `make audit` where pypi.org's JSON API or api.osv.dev" in output
    assert ALL_CLEAR not in output


def test_no_reachable_advisory_database_fails_before_pip_audit_is_needed(
    offline_env: dict[str, str], tmp_path: Path
) -> None:
    absent = tmp_path / "no-pip-audit"

    result = audit("--pip-audit", str(absent), *AUDITED, "--", "--strict", env=offline_env)

    assert result.returncode == 3, result.stdout + result.stderr
    assert_says_no_database_answers(result.stdout + result.stderr)
    assert "cannot run" not in result.stdout + result.stderr  # pip-audit was never started


@pytest.mark.parametrize("service", ["pypi", "osv", "esms"])
def test_a_chosen_service_that_does_not_answer_fails_too(
    offline_env: dict[str, str], service: str
) -> None:
    result = audit("--service", service, "--probe-only", LAYER, env=offline_env)

    assert result.returncode == 3
    assert f"  {service}: " in result.stderr
    assert ALL_CLEAR not in result.stdout + result.stderr


def test_make_audit_fails_the_same_way_without_installing_pip_audit(
    offline_env: dict[str, str], tmp_path: Path
) -> None:
    audit_venv = tmp_path / "pip-audit-venv"

    result = run(
        [
            "make",
            "--no-print-directory",
            "audit",
            f"PYTHON={sys.executable}",
            f"AUDIT_VENV={audit_venv}",
        ],
        offline_env,
    )

    assert result.returncode != 0
    assert_says_no_database_answers(result.stdout + result.stderr)
    assert "--probe-only" in result.stdout
    assert "--pip-audit" not in result.stdout  # the audit itself never started
    assert not audit_venv.exists()  # nor was pip-audit installed


def test_the_script_refuses_to_run_pip_audit_without_strict(offline_env: dict[str, str]) -> None:
    result = audit("--pip-audit", "pip-audit", LAYER, env=offline_env)

    assert result.returncode == 2
    assert "pass pip-audit's --strict" in result.stderr


class OsvStub(BaseHTTPRequestHandler):
    """Answers every OSV query with no vulnerabilities, and keeps the queries."""

    queries: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        OsvStub.queries.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def osv_url() -> Iterator[str]:
    OsvStub.queries = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), OsvStub)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    """Pins in an included file and in the file itself, an extra and comments."""
    (tmp_path / "base.txt").write_text("# base\nalpha==1.0\n", encoding="utf-8")
    main = tmp_path / "main.txt"
    main.write_text("# main\n-r base.txt\nbeta[extra]==2.0  # why\n", encoding="utf-8")
    return main


RESOLVED = [["alpha", "1.0"], ["beta", "2.0"], ["gamma", "3.0"]]  # gamma: a dependency of beta


def clean(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "version": v, "vulns": []} for n, v in RESOLVED if n in names]


def audit_with_fakes(
    tmp_path: Path,
    requirements: Path,
    osv_url: str,
    report: dict[str, Any] | None,
    **fake: str,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    tool = tmp_path / "fake-tool"
    tool.write_text(f"#!{sys.executable}\n{FAKE_TOOL}", encoding="utf-8")
    tool.chmod(0o755)
    record = tmp_path / "record.json"
    env = base_env() | {
        "FAKE_RESOLUTION": json.dumps(RESOLVED),
        "FAKE_REPORT": "" if report is None else json.dumps(report),
        "FAKE_RECORD": str(record),
        **fake,
    }
    result = audit(
        *["--service", "osv", "--osv-url", osv_url, "--python", str(tool)],
        *["--pip-audit", str(tool), str(requirements), "--", "--strict"],
        env=env,
    )
    return result, json.loads(record.read_text()) if record.exists() else {}


def test_pip_audit_gets_the_full_resolution_pinned_and_strict_and_a_clean_report_passes(
    tmp_path: Path, requirements: Path, osv_url: str
) -> None:
    report = {"dependencies": clean("alpha", "beta", "gamma"), "fixes": []}

    result, record = audit_with_fakes(tmp_path, requirements, osv_url, report)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 packages audited (2 pinned in the file, 1 resolved by pip)" in result.stdout
    # The probe asked the stub what pip-audit will ask it, for the first pin.
    assert OsvStub.queries == [
        {"package": {"name": "alpha", "ecosystem": "PyPI"}, "version": "1.0"}
    ]
    assert record["requirements"] == "alpha==1.0\nbeta==2.0\ngamma==3.0\n"
    argv = record["argv"]
    assert argv[argv.index("--vulnerability-service") + 1] == "osv"
    assert argv[argv.index("--osv-url") + 1] == osv_url
    assert {"--strict", "--no-deps", "--disable-pip"} <= set(argv)


@pytest.mark.parametrize(
    ("report", "fake", "says"),
    [
        pytest.param(
            {"dependencies": [{"name": "alpha", "skip_reason": "not on PyPI"}, *clean("beta")]},
            {},
            "INCOMPLETE alpha was skipped: not on PyPI",
            id="skipped-but-exit-0",
        ),
        pytest.param(
            {"dependencies": clean("alpha", "beta")},
            {},
            "INCOMPLETE gamma==3.0 was not audited",
            id="transitive-dependency-missing",
        ),
        pytest.param(
            {"dependencies": [{"name": "alpha", "version": "0.9", "vulns": []}, *clean("beta")]},
            {},
            "INCOMPLETE alpha==1.0 was not audited (pip-audit audited 0.9)",
            id="another-version-than-the-pin",
        ),
        pytest.param(
            {"dependencies": []}, {}, "pip-audit audited no dependency at all", id="nothing"
        ),
        pytest.param(
            {
                "dependencies": [
                    {
                        "name": "beta",
                        "version": "2.0",
                        "vulns": [{"id": "PYSEC-1", "fix_versions": ["2.1"], "aliases": ["CVE-1"]}],
                    },
                    *clean("alpha", "gamma"),
                ]
            },
            {"FAKE_EXIT": "1"},
            "VULNERABLE beta 2.0: PYSEC-1 (CVE-1), fixed in: 2.1",
            id="vulnerability",
        ),
        pytest.param(
            None,
            {
                "FAKE_EXIT": "1",
                "FAKE_STDERR": "alpha: Dependency not found on PyPI and could not be audited",
            },
            "without a report: a dependency could not be audited",
            id="strict-stopped-at-a-skip",
        ),
        pytest.param(
            None,
            {"FAKE_PIP_EXIT": "1"},
            "pip could not resolve it (exit 1)",
            id="resolution-failed",
        ),
        pytest.param(
            None,
            {"FAKE_RESOLUTION": json.dumps([["alpha", "1.0"]])},
            "pip's resolution is not the file's pins",
            id="resolution-without-a-pin",
        ),
    ],
)
def test_anything_short_of_a_full_audit_fails(
    tmp_path: Path,
    requirements: Path,
    osv_url: str,
    report: dict[str, Any] | None,
    fake: dict[str, str],
    says: str,
) -> None:
    result, _ = audit_with_fakes(tmp_path, requirements, osv_url, report, **fake)

    assert result.returncode == 1, result.stdout + result.stderr
    assert says in result.stdout + result.stderr
    assert f"error: {requirements}: " in result.stderr
    assert ALL_CLEAR not in result.stdout + result.stderr


def test_make_audit_probes_installs_then_runs_the_script_with_strict_over_the_pins() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    # Not on $(STAMP): the CI job audits without building .venv.
    assert re.search(r"^audit: ## ", makefile, re.MULTILINE)

    result = run(["make", "-n", "--no-print-directory", "audit"], base_env())
    commands = result.stdout.replace("\\\n", " ")

    assert result.returncode == 0, result.stderr
    probe = commands.index(".ci/audit.py --probe-only")
    install = commands.index("-m pip install --quiet --disable-pip-version-check")
    (audit_line,) = [line for line in commands.splitlines() if "--pip-audit" in line]
    assert probe < install < commands.index(audit_line)
    assert "-r requirements-audit.txt" in commands[install:]
    assert re.search(r"\.ci/audit\.py .*--pip-audit \.venv/pip-audit/bin/pip-audit", audit_line)
    assert audit_line.split()[-len(AUDITED) - 2 :] == [*AUDITED, "--", "--strict"]


def test_requirements_audit_pins_pip_audit_and_everything_it_needs_exactly() -> None:
    lines = (REPO_ROOT / "requirements-audit.txt").read_text(encoding="utf-8").splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]

    assert "pip-audit==2.10.1" in pins
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][\w.]*", pin) for pin in pins), pins
    assert len(pins) > 20  # its dependencies too, not just pip-audit


def test_the_ci_workflow_has_an_audit_job_that_runs_make_audit() -> None:
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/ci.yml").read_text("utf-8"))
    job = workflow["jobs"]["audit"]
    runs = [step["run"] for step in job["steps"] if "run" in step]
    setup = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]

    assert runs == ["make audit"]
    assert setup[0]["with"] == {"python-version": "3.13"}
    assert job["steps"][0]["with"] == {"persist-credentials": False}
    assert "needs" not in job
    assert "permissions" not in job  # the workflow's contents: read
    assert workflow["permissions"] == {"contents": "read"}
