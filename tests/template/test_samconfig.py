"""samconfig.toml: three environments whose overrides name real parameters with valid values."""

from __future__ import annotations

import re
import shlex
import tomllib
from functools import cache
from typing import Any

import pytest

from local.cfn import TEMPLATE_PATH, load_template

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


# Placeholders the template refuses on purpose: a deploy fails until they are replaced, rather
# than send every alarm to an address nobody reads.
ALARM_EMAIL_PLACEHOLDER = re.compile(
    r"card-tokens-(staging|prod)-oncall@REPLACE-BEFORE-DEPLOY\.invalid"
)
BOUNDARY_PLACEHOLDER = re.compile(
    r"arn:aws:iam::000000000000:policy/card-tokens-(staging|prod)-permissions-boundary"
)
PLACEHOLDERS = {
    "AlarmEmail": ALARM_EMAIL_PLACEHOLDER,
    "PermissionsBoundaryArn": BOUNDARY_PLACEHOLDER,
}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_overrides_name_template_parameters_with_values_they_accept(environment: str) -> None:
    parameters = load_template()["Parameters"]

    for name, value in overrides(environment).items():
        if name in PLACEHOLDERS and PLACEHOLDERS[name].fullmatch(value):
            continue  # refused on purpose: test_staging_and_prod_cannot_deploy_a_placeholder_...
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
def test_staging_and_prod_cannot_deploy_a_placeholder_alarm_recipient(environment: str) -> None:
    # The stack's own topic (no AlarmTopicArn), subscribed by AlarmEmail. The committed value is
    # a placeholder the template's AllowedPattern refuses, so CloudFormation rejects the deploy
    # until someone writes the real on-call address (or an existing topic's ARN) here.
    settings = overrides(environment)
    pattern = load_template()["Parameters"]["AlarmEmail"]["AllowedPattern"]

    assert "AlarmTopicArn" not in settings
    assert ALARM_EMAIL_PLACEHOLDER.fullmatch(settings["AlarmEmail"])
    assert not re.fullmatch(pattern, settings["AlarmEmail"])


def test_no_environment_points_at_a_documentation_account() -> None:
    # 111122223333 is the account id of AWS's documentation examples: nothing there is ours.
    assert "111122223333" not in SAMCONFIG.read_text(encoding="utf-8")


def test_prod_keeps_a_year_of_logs() -> None:
    # PCI DSS 10.5.1: twelve months of audit history.
    assert int(overrides("prod")["LogRetentionDays"]) >= 365


def test_each_environment_has_its_own_issuer_and_audience() -> None:
    # A token issued by dev must never verify in staging or prod: iss and aud differ.
    issuers = [overrides(environment).get("TokenIssuer") for environment in ENVIRONMENTS]
    audiences = [overrides(environment).get("TokenAudience") for environment in ENVIRONMENTS]

    assert None not in issuers
    assert None not in audiences
    assert len(set(issuers)) == len(ENVIRONMENTS)
    assert len(set(audiences)) == len(ENVIRONMENTS)


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_staging_and_prod_cannot_deploy_a_placeholder_boundary(environment: str) -> None:
    # The boundary is an output of deploy/github-oidc-role.yaml in the target account; the
    # committed placeholder names account 000000000000, which the template refuses.
    value = overrides(environment)["PermissionsBoundaryArn"]
    pattern = load_template()["Parameters"]["PermissionsBoundaryArn"]["AllowedPattern"]

    assert BOUNDARY_PLACEHOLDER.fullmatch(value)
    assert not re.fullmatch(pattern, value)
    # ... while the same ARN in a real account passes.
    assert re.fullmatch(pattern, value.replace("000000000000", "210987654321"))


def test_each_environment_rolls_out_as_designed() -> None:
    # docs/rollout.md: dev all at once, staging shifts step by step (so every merge runs the
    # traffic shifting first), prod a canary that the rollback alarms watch for 10 minutes.
    assert {env: overrides(env)["DeploymentStrategy"] for env in ENVIRONMENTS} == {
        "default": "AllAtOnce",
        "staging": "Linear10PercentEvery1Minute",
        "prod": "Canary10Percent10Minutes",
    }
