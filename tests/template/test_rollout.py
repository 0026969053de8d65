"""template.yaml's rollout (docs/rollout.md): the API functions publish a version per change,
the REST API calls their `live` alias, CodeDeploy shifts it under rollback alarms that always
exist and notify the alarm topic, and SnapStart is one parameter away.

Most checks run the SAM transform (samtranslator, offline): aliases, versions, deployment
groups and the integrations with the alias exist only in the transformed template.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.model.preferences.deployment_preference_collection import (
    CODEDEPLOY_PREDEFINED_CONFIGURATIONS_LIST,
)

from local.cfn import TEMPLATE_PATH, resources_of_type
from tests.template.sam import CODE_URI, LAYER_URI, packaged, sam_transform

Template = dict[str, Any]

ALIAS = "live"
# Function → the prefix of its rollback alarms. Behind the REST API: a version per change.
API_FUNCTIONS = {
    "IssueTokenFunction": "IssueToken",
    "ProcessPaymentFunction": "ProcessPayment",
    "PublishJwksFunction": "PublishJwks",
    "CheckoutPageFunction": "CheckoutPage",  # only with CheckoutPage=enabled
}
# Invoked on their unqualified ARN by Secrets Manager and EventBridge Scheduler: no alias.
BACKGROUND_FUNCTIONS = {"RotateSigningKeyFunction", "ReconcilePaymentsFunction"}
# The functions that import the layer at init, where a snapshot saves the most.
SNAPSTART_FUNCTIONS = {"IssueTokenFunction", "ProcessPaymentFunction", "PublishJwksFunction"}
# The handlers answer a bug with a 500, which Errors misses: every deployment group also
# watches the operational 5xx rate alarm itself (it notifies on-call; no twin of it).
API_ROLLBACK_ALARM = "ApiServerErrorRateAlarm"
CHOSEN_TOPIC = {"Fn::If": ["CreatesAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
CHECKOUT = {"CheckoutPage": "enabled"}
# Where a property's parameters go into the function's configuration but not into a version.
UNVERSIONED_PROPERTIES = {
    "ReservedConcurrentExecutions",  # a function setting, whatever the version
    "DeploymentPreference",  # how a version is rolled out
    "VersionDescription",  # where the parameters are quoted
    "Events",  # the routes (API Gateway's, not the version's)
}
DESCRIPTION_MAX = 256  # AWS::Lambda::Version Description
# Parameters no deployed version runs with. LocalEndpointUrl points `sam local invoke` at the
# local emulator (AWS_ENDPOINT_URL): its pattern admits only addresses of the developer's
# machine, which no function on AWS could reach, and sam local runs $LATEST, never a version.
# Quoting it would spend the description on a value `live` must never get.
# test_local_only_parameters_admit_nothing_but_a_local_address keeps that premise.
LOCAL_ONLY_PARAMETERS = {"LocalEndpointUrl"}


def translated(
    monkeypatch: pytest.MonkeyPatch,
    parameters: dict[str, str] | None = None,
    code: str = CODE_URI,
    layer: str = LAYER_URI,
) -> Template:
    """The transformed template, after `sam deploy` uploaded the code and the layer."""
    return sam_transform(packaged(code, layer), parameters)


def rollback_alarms(function_id: str) -> list[dict[str, str]]:
    prefix = API_FUNCTIONS[function_id]
    return [
        {"Ref": f"{prefix}RollbackErrorsAlarm"},
        {"Ref": f"{prefix}RollbackLatencyAlarm"},
        {"Ref": API_ROLLBACK_ALARM},
    ]


def versions(output: Template) -> dict[str, str]:
    """Function → the logical id of the version its alias points at."""
    return {
        alias["Properties"]["FunctionName"]["Ref"]: alias["Properties"]["FunctionVersion"][
            "Fn::GetAtt"
        ][0]
        for alias in resources_of_type(output, "AWS::Lambda::Alias").values()
    }


# ---------------------------------------------------------------- the template as written


def test_every_function_is_either_behind_the_api_or_in_the_background(template: Template) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")

    assert set(functions) == set(API_FUNCTIONS) | BACKGROUND_FUNCTIONS


@pytest.mark.parametrize("function_id", API_FUNCTIONS)
def test_api_function_publishes_live_and_deploys_under_its_rollback_alarms(
    template: Template, function_id: str
) -> None:
    function = template["Resources"][function_id]
    properties = function["Properties"]

    assert properties["AutoPublishAlias"] == ALIAS
    # Any property change publishes a version, the layer's included (with PublishLambdaVersion)
    assert properties["AutoPublishAliasAllProperties"] is True
    preference = properties["DeploymentPreference"]
    assert preference["Type"] == {"Ref": "DeploymentStrategy"}
    assert preference["Alarms"] == rollback_alarms(function_id)
    # A conditional function's deployment group must go with it
    if "Condition" in function:
        assert preference["PassthroughCondition"] is True


@pytest.mark.parametrize("function_id", sorted(BACKGROUND_FUNCTIONS))
def test_background_function_runs_its_latest_code_without_alias_or_snapshot(
    template: Template, function_id: str
) -> None:
    properties = template["Resources"][function_id]["Properties"]

    assert not {"AutoPublishAlias", "DeploymentPreference", "SnapStart"} & set(properties)
    assert not {"AutoPublishAlias", "DeploymentPreference", "SnapStart"} & set(
        template["Globals"]["Function"]
    )


def test_the_layer_publishes_a_new_version_of_the_functions_that_use_it(
    template: Template,
) -> None:
    assert template["Resources"]["CardTokensLayer"]["Properties"]["PublishLambdaVersion"] is True


def test_the_deployment_strategy_is_a_codedeploy_lambda_configuration(template: Template) -> None:
    parameter = template["Parameters"]["DeploymentStrategy"]

    assert parameter["Default"] == "AllAtOnce"
    assert set(parameter["AllowedValues"]) <= set(CODEDEPLOY_PREDEFINED_CONFIGURATIONS_LIST)
    assert {"AllAtOnce", "Canary10Percent10Minutes", "Linear10PercentEvery1Minute"} <= set(
        parameter["AllowedValues"]
    )


def _rollback_alarm_ids(template: Template) -> set[str]:
    return {
        alarm["Ref"]
        for function_id in API_FUNCTIONS
        for alarm in template["Resources"][function_id]["Properties"]["DeploymentPreference"][
            "Alarms"
        ]
    }


def test_rollback_alarms_always_exist_and_notify_the_chosen_topic(
    template: Template,
) -> None:
    resources = template["Resources"]

    for alarm_id in _rollback_alarm_ids(template):
        alarm = resources[alarm_id]
        properties = alarm["Properties"]
        assert alarm["Type"] == "AWS::CloudWatch::Alarm", alarm_id
        # Only the checkout page's come and go, with the page
        expected = {"Condition": "ServesCheckoutPage"} if "CheckoutPage" in alarm_id else {}
        assert {k: v for k, v in alarm.items() if k == "Condition"} == expected, alarm_id
        # Like every alarm (tests/template/test_alerts.py): a rollback reaches whoever is on call
        assert properties["AlarmActions"] == [CHOSEN_TOPIC], alarm_id
        assert properties["OKActions"] == [CHOSEN_TOPIC], alarm_id
        assert properties["TreatMissingData"] == "notBreaching", alarm_id
        # Named after the stack: the deploy's execution role may create only those
        assert properties["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), alarm_id
        operational = alarm_id == API_ROLLBACK_ALARM
        runbook = "Runbook: docs/operate.md" if operational else "docs/rollout.md"
        assert runbook in properties["AlarmDescription"], alarm_id


def assert_properties(properties: dict[str, Any], **expected: Any) -> None:
    assert {name: properties.get(name) for name in expected} == expected


@pytest.mark.parametrize("function_id", API_FUNCTIONS)
def test_rollback_alarms_watch_the_new_version_behind_live(
    template: Template, function_id: str
) -> None:
    resources = template["Resources"]
    prefix = API_FUNCTIONS[function_id]
    # The alias's traffic that the version it is being shifted to served
    dimensions = [
        {"Name": "FunctionName", "Value": {"Ref": function_id}},
        {"Name": "Resource", "Value": {"Fn::Sub": f"${{{function_id}}}:{ALIAS}"}},
        {"Name": "ExecutedVersion", "Value": {"Fn::GetAtt": [function_id, "Version.Version"]}},
    ]

    # Both watch that version's own series, minute by minute
    new_version = {"Namespace": "AWS/Lambda", "Dimensions": dimensions, "Period": 60}

    errors = resources[f"{prefix}RollbackErrorsAlarm"]["Properties"]
    # One crash or timeout of the new version, in one minute
    assert_properties(errors, **new_version, MetricName="Errors", Statistic="Sum")
    assert_properties(
        errors, EvaluationPeriods=1, Threshold=0, ComparisonOperator="GreaterThanThreshold"
    )
    latency = resources[f"{prefix}RollbackLatencyAlarm"]["Properties"]
    assert_properties(latency, **new_version, MetricName="Duration", ExtendedStatistic="p99")
    assert_properties(
        latency,
        Threshold={"Ref": "RollbackLatencyP99Milliseconds"},
        EvaluationPeriods=3,
        DatapointsToAlarm=2,
    )


def test_the_api_rollback_alarm_is_the_one_5xx_rate_alarm(template: Template) -> None:
    # The handlers answer a bug with a 500 rather than fail the invocation: Errors misses it.
    # The deployment groups watch the operational 5xx rate alarm, which notifies on-call; no
    # second alarm computes the same rate. A REST API counts its 5xx as 5XXError (the HTTP API's
    # name, 5xx, has no data here).
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    rollback = alarms[API_ROLLBACK_ALARM]["Properties"]
    api_metric_names = [
        metric.get("MetricName")
        for alarm in alarms.values()
        for metric in [alarm["Properties"]]
        + [
            query["MetricStat"]["Metric"]
            for query in alarm["Properties"].get("Metrics", [])
            if "MetricStat" in query
        ]
        if metric.get("Namespace") == "AWS/ApiGateway"
    ]
    on_5xx = [
        alarm_id
        for alarm_id, alarm in alarms.items()
        for query in alarm["Properties"].get("Metrics", [])
        if query.get("MetricStat", {}).get("Metric", {}).get("MetricName") in {"5XXError", "5xx"}
        or "5XX" in query.get("Expression", "").upper()
    ]

    assert on_5xx == [API_ROLLBACK_ALARM]
    assert "5XXError" in api_metric_names
    assert not {"4xx", "5xx"} & set(api_metric_names)
    assert rollback["Threshold"] == {"Ref": "Api5xxRatePercentThreshold"}
    assert "100 * errors / requests" in json.dumps(rollback["Metrics"])
    assert (rollback["EvaluationPeriods"], rollback["DatapointsToAlarm"]) == (3, 2)
    assert rollback["TreatMissingData"] == "notBreaching"


# ---------------------------------------------------------------- after the transform


@pytest.mark.parametrize("parameters", [{}, CHECKOUT], ids=["default", "checkout-page"])
def test_every_route_integrates_with_the_live_alias(
    monkeypatch: pytest.MonkeyPatch, parameters: dict[str, str]
) -> None:
    output = translated(monkeypatch, parameters)
    aliases = resources_of_type(output, "AWS::Lambda::Alias")
    paths = output["Resources"]["CardTokensApi"]["Properties"]["Body"]["paths"]

    integrations = [
        operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        for path in paths.values()
        for operation in path.values()
        if isinstance(operation, dict) and "x-amazon-apigateway-integration" in operation
    ]
    assert len(integrations) >= 4
    for uri in integrations:
        (target,) = re.findall(r"functions/\$\{([A-Za-z0-9]+)\}/invocations", uri)
        assert target in aliases, uri
        assert target.endswith(f"Alias{ALIAS}"), uri
    # and API Gateway may invoke the alias (only)
    for permission in resources_of_type(output, "AWS::Lambda::Permission").values():
        if permission["Properties"]["Principal"] == "apigateway.amazonaws.com":
            assert permission["Properties"]["FunctionName"]["Ref"] in aliases


@pytest.mark.parametrize(
    "strategy", ["AllAtOnce", "Canary10Percent10Minutes", "Linear10PercentEvery1Minute"]
)
def test_codedeploy_shifts_each_alias_with_the_strategy_and_rolls_back_on_its_alarms(
    monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    output = translated(monkeypatch, {"DeploymentStrategy": strategy, **CHECKOUT})
    resources = output["Resources"]

    application = resources["ServerlessDeploymentApplication"]
    assert application["Type"] == "AWS::CodeDeploy::Application"
    assert application["Properties"] == {"ComputePlatform": "Lambda"}
    assert "Condition" not in application
    for function_id in API_FUNCTIONS:
        group = resources[f"{function_id}DeploymentGroup"]
        alias = resources[f"{function_id}Alias{ALIAS}"]
        properties = group["Properties"]
        assert properties["DeploymentConfigName"] == {
            "Fn::Sub": ["CodeDeployDefault.Lambda${ConfigName}", {"ConfigName": strategy}]
        }
        assert properties["AlarmConfiguration"] == {
            "Enabled": True,
            "Alarms": [{"Name": alarm} for alarm in rollback_alarms(function_id)],
        }
        assert properties["AutoRollbackConfiguration"]["Enabled"] is True
        assert "DEPLOYMENT_STOP_ON_ALARM" in properties["AutoRollbackConfiguration"]["Events"]
        assert alias["UpdatePolicy"] == {
            "CodeDeployLambdaAliasUpdate": {
                "ApplicationName": {"Ref": "ServerlessDeploymentApplication"},
                "DeploymentGroupName": {"Ref": f"{function_id}DeploymentGroup"},
            }
        }
        # The checkout page's group, alias and version go with the page
        condition = resources[function_id].get("Condition")
        for resource in (group, alias, resources[versions(output)[function_id]]):
            assert resource.get("Condition") == condition, function_id


def test_with_the_defaults_the_rollback_alarms_exist_and_watch_the_new_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output = translated(monkeypatch, {})
    resources = output["Resources"]
    published = versions(output)

    for function_id in ("IssueTokenFunction", "ProcessPaymentFunction", "PublishJwksFunction"):
        prefix = API_FUNCTIONS[function_id]
        for kind in ("Errors", "Latency"):
            alarm = resources[f"{prefix}Rollback{kind}Alarm"]
            assert "Condition" not in alarm
            (executed,) = [
                d["Value"]
                for d in alarm["Properties"]["Dimensions"]
                if d["Name"] == "ExecutedVersion"
            ]
            assert executed == {"Fn::GetAtt": [published[function_id], "Version"]}
    assert "Condition" not in resources[API_ROLLBACK_ALARM]


def test_a_code_or_layer_change_publishes_a_new_version_of_every_function_it_reaches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = versions(translated(monkeypatch, CHECKOUT))
    new_layer = versions(translated(monkeypatch, CHECKOUT, layer="s3://artifacts/layer-2.zip"))
    new_code = versions(translated(monkeypatch, CHECKOUT, code="s3://artifacts/code-2.zip"))

    assert set(before) == set(API_FUNCTIONS)
    for function_id in API_FUNCTIONS:
        assert new_layer[function_id] != before[function_id], function_id
        assert new_code[function_id] != before[function_id], function_id


def _parameters_in(value: Any, parameters: set[str]) -> set[str]:
    """Template parameters a value refers to, through Ref or Fn::Sub."""
    if isinstance(value, list):
        return set().union(*(_parameters_in(item, parameters) for item in value))
    if not isinstance(value, dict):
        return set()
    found: set[str] = set()
    if isinstance(value.get("Ref"), str) and value["Ref"] in parameters:
        found.add(value["Ref"])
    sub = value.get("Fn::Sub")
    if sub is not None:
        text = sub[0] if isinstance(sub, list) else sub
        found |= set(re.findall(r"\$\{([A-Za-z0-9]+)\}", text)) & parameters
    return found | _parameters_in(list(value.values()), parameters)


@pytest.mark.parametrize("function_id", API_FUNCTIONS)
def test_a_parameter_change_republishes_every_version_it_configures(
    template: Template, function_id: str
) -> None:
    # SAM hashes a !Ref as written, so a new parameter value alone publishes no version and
    # `live` would keep the old configuration. The version's description quotes each value
    # instead: a changed description replaces the version, which publishes a new one.
    parameters = set(template["Parameters"])
    # SAM merges Globals into the function (Environment variables key by key)
    properties = template["Resources"][function_id]["Properties"]
    configured = (
        set().union(
            *(
                _parameters_in(value, parameters)
                for source in (template["Globals"]["Function"], properties)
                for key, value in source.items()
                if key not in UNVERSIONED_PROPERTIES
            )
        )
        - LOCAL_ONLY_PARAMETERS
    )

    assert configured
    assert _parameters_in(properties["VersionDescription"], parameters) == configured


@pytest.mark.parametrize(
    ("address", "accepted"),
    [
        ("", True),
        ("http://host.docker.internal:4566", True),
        ("http://localhost:3001", True),
        ("http://127.0.0.1", True),
        ("https://kms.us-east-1.amazonaws.com", False),
        ("http://10.0.0.12:4566", False),
        ("http://emulator.internal.example", False),
        ("http://localhost.attacker.example", False),
    ],
)
def test_local_only_parameters_admit_nothing_but_a_local_address(
    template: Template, address: str, accepted: bool
) -> None:
    (name,) = LOCAL_ONLY_PARAMETERS
    parameter = template["Parameters"][name]
    globals_variables = template["Globals"]["Function"]["Environment"]["Variables"]

    assert parameter["Default"] == ""
    assert bool(re.fullmatch(parameter["AllowedPattern"], address)) is accepted
    # and it reaches the functions only as AWS_ENDPOINT_URL, absent unless set
    assert globals_variables["AWS_ENDPOINT_URL"] == {
        "Fn::If": ["HasLocalEndpoint", {"Ref": name}, {"Ref": "AWS::NoValue"}]
    }
    assert [
        key
        for source in (
            template["Globals"]["Function"],
            *[
                f["Properties"]
                for f in resources_of_type(template, "AWS::Serverless::Function").values()
            ],
        )
        for key, value in source.items()
        if name in _parameters_in(value, set(template["Parameters"]))
    ] == ["Environment"]


@pytest.mark.parametrize("function_id", API_FUNCTIONS)
def test_the_version_description_fits_whatever_the_parameters(
    template: Template, function_id: str
) -> None:
    description = template["Resources"][function_id]["Properties"]["VersionDescription"]["Fn::Sub"]

    def longest(name: str) -> int:
        spec = template["Parameters"][name]
        if "AllowedValues" in spec:
            return max(len(str(value)) for value in spec["AllowedValues"])
        if spec["Type"] == "Number":
            return max(len(str(spec["MinValue"])), len(str(spec["MaxValue"])))
        return int(spec["MaxLength"])  # a free string must be bounded

    names = re.findall(r"\$\{([A-Za-z0-9]+)\}", description)
    literal = re.sub(r"\$\{[A-Za-z0-9]+\}", "", description)
    assert len(literal) + sum(longest(name) for name in names) <= DESCRIPTION_MAX


# ---------------------------------------------------------------- SnapStart


def test_snapstart_is_a_parameter_off_by_default(template: Template) -> None:
    parameter = template["Parameters"]["SnapStart"]

    assert parameter["Default"] == "None"
    assert parameter["AllowedValues"] == ["None", "PublishedVersions"]


def test_snapstart_applies_to_the_functions_that_import_the_layer_behind_the_api(
    template: Template,
) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")

    assert {f for f, r in functions.items() if "SnapStart" in r["Properties"]} == (
        SNAPSTART_FUNCTIONS
    )
    for function_id in SNAPSTART_FUNCTIONS:
        properties = {**template["Globals"]["Function"], **functions[function_id]["Properties"]}
        assert properties["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
        # Python 3.12 and later; a snapshot only of a published version (the alias's)
        assert properties["Runtime"] == "python3.13"
        assert properties["AutoPublishAlias"] == ALIAS
        # What SnapStart cannot be combined with
        assert not {"ProvisionedConcurrencyConfig", "FileSystemConfigs"} & set(properties)
        assert properties.get("EphemeralStorage", {}).get("Size", 512) <= 512
        # and its handler registers the hooks that reset what a snapshot must not share
        handler_dir = Path(properties["CodeUri"])
        source = (TEMPLATE_PATH.parent / handler_dir / "app.py").read_text(encoding="utf-8")
        assert "register_hooks()" in source, function_id
