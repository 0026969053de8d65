"""samconfig.toml: three environments whose overrides name real parameters with valid values."""

from __future__ import annotations

import re
import shlex
import tomllib
from functools import cache
from typing import Any

import pytest

from local.cfn import TEMPLATE_PATH, load_template

pytestmark = pytest.mark.template

SAMCONFIG = TEMPLATE_PATH.parent / "samconfig.toml"
ENVIRONMENTS = {"default": "dev", "staging": "staging", "prod": "prod"}


@cache
def samconfig() -> dict[str, Any]:
    with SAMCONFIG.open("rb") as handle:
        return tomllib.load(handle)


def deploy_settings(environment: str) -> dict[str, Any]:
    settings: dict[str, Any] = samconfig()[environment]["deploy"]["parameters"]
    return settings


def overrides(environment: str) -> dict[str, str]:
    """parameter_overrides as SAM CLI reads it: Key="Value" pairs, shell-quoted."""
    pairs = shlex.split(deploy_settings(environment)["parameter_overrides"])
    return dict(pair.split("=", 1) for pair in pairs)


def tags(environment: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in shlex.split(deploy_settings(environment)["tags"]))


def test_there_are_exactly_the_three_environments() -> None:
    assert set(samconfig()) - {"version"} == set(ENVIRONMENTS)


@pytest.mark.parametrize(("environment", "name"), ENVIRONMENTS.items())
def test_each_environment_deploys_its_own_stack_with_resolve_s3_and_iam(
    environment: str, name: str
) -> None:
    settings = deploy_settings(environment)

    assert samconfig()[environment]["global"]["parameters"]["stack_name"] == f"card-tokens-{name}"
    assert settings["capabilities"] == "CAPABILITY_IAM"
    assert settings["resolve_s3"] is True
    assert settings["s3_prefix"] == f"card-tokens-{name}"
    assert tags(environment) == {"project": "card-tokens", "environment": name}


def test_only_prod_asks_a_person_to_confirm_the_change_set() -> None:
    assert {env: deploy_settings(env)["confirm_changeset"] for env in ENVIRONMENTS} == {
        "default": False,
        "staging": False,
        "prod": True,
    }


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_overrides_name_template_parameters_with_values_they_accept(environment: str) -> None:
    parameters = load_template()["Parameters"]

    for name, value in overrides(environment).items():
        assert name in parameters, f"{environment}: {name} is not a template parameter"
        spec = parameters[name]
        if "AllowedValues" in spec:
            assert value in [str(allowed) for allowed in spec["AllowedValues"]], (name, value)
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), (name, value)
        if "MaxLength" in spec:
            assert len(value) <= int(spec["MaxLength"]), (name, value)
        if spec["Type"] == "Number":
            number = float(value)
            assert spec.get("MinValue", number) <= number <= spec.get("MaxValue", number), name


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_staging_and_prod_send_alarms_somewhere(environment: str) -> None:
    assert overrides(environment)["AlarmTopicArn"].startswith("arn:aws:sns:")


def test_prod_keeps_a_year_of_logs() -> None:
    # PCI DSS 10.5.1: twelve months of audit history.
    assert int(overrides("prod")["LogRetentionDays"]) >= 365


def test_each_environment_rolls_out_as_designed() -> None:
    # docs/rollout.md: dev all at once, staging shifts step by step (so every merge runs the
    # traffic shifting first), prod a canary that the rollback alarms watch for 10 minutes.
    assert {env: overrides(env)["DeploymentStrategy"] for env in ENVIRONMENTS} == {
        "default": "AllAtOnce",
        "staging": "Linear10PercentEvery1Minute",
        "prod": "Canary10Percent10Minutes",
    }
