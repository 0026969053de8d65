"""The processor setting: Processor picks the adapter, ForwardAllowedHosts is the only place the
forwarding processor's hosts come from (fixed at deploy: never from a request or a secret), and
CloudFormation refuses a forwarding stack without hosts. Who may read the processor's
credentials is in test_iam_matrix.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from local.cfn import resources_of_type
from local.intrinsics import Resolver
from tests.template.policies import referenced_ids
from tests.template.sam import packaged, sam_transform

Template = dict[str, Any]

PAYMENTS, RECONCILER = "ProcessPaymentFunction", "ReconcilePaymentsFunction"
ALLOW_LIST = "ForwardAllowedHosts"
HOSTS_VARIABLE = "FORWARD_ALLOWED_HOSTS"
# Parameter values that deploy each processor (forward needs its allow-list).
PROCESSOR_PARAMETERS = {
    "sandbox": {},
    "stripe": {"Processor": "stripe"},
    "forward": {"Processor": "forward", ALLOW_LIST: "api.processor.example"},
}


def test_the_sandbox_stays_the_default_and_any_other_processor_is_external(
    template: Template,
) -> None:
    parameter = template["Parameters"]["Processor"]

    assert parameter["Default"] == "sandbox"
    assert parameter["AllowedValues"] == ["sandbox", "stripe", "forward"]
    assert template["Conditions"]["ChargesAnExternalProcessor"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "Processor"}, "sandbox"]}]
    }


# ---------------------------------------------------------------- the allow-list's pattern
# CloudFormation's AllowedPattern must match the whole value, as re.fullmatch does.

ACCEPTED_HOSTS = [
    "",  # no forwarding
    "api.processor.example",
    "pay.processor.example:8443",
    "api.processor.example,pay.processor.example:443",
    "10.20.30.40:8443",
    "processor:65535",
    "a-b.c-d.example:1",
]
REFUSED_HOSTS = [
    "https://api.processor.example",  # a scheme
    "//api.processor.example",
    "api.processor.example/charges",  # a path
    "api.processor.example:443/charges",
    "api.processor.example?next=evil.example",
    "api.processor.example#fragment",
    "user@api.processor.example",  # userinfo
    "user:password@api.processor.example",
    "*.processor.example",  # wildcards
    "*",
    "api.*.example",
    "api.processor.example,",  # empty items
    ",api.processor.example",
    "api.processor.example,,pay.processor.example",
    "api.processor.example, pay.processor.example",  # a space
    " api.processor.example",
    "api.processor.example\npay.processor.example",
    "API.Processor.Example",  # upper case: the function compares host names as given
    "api.processor.example:",  # ports
    "api.processor.example:0",
    "api.processor.example:65536",
    "api.processor.example:08443",
    "-api.processor.example",  # not a DNS name
    "api..processor.example",
    "api.processor.example.",
    "[::1]:443",
]


def allow_list_pattern(template: Template) -> re.Pattern[str]:
    return re.compile(template["Parameters"][ALLOW_LIST]["AllowedPattern"])


@pytest.mark.parametrize("hosts", ACCEPTED_HOSTS)
def test_the_allow_list_accepts_hosts_and_ports(template: Template, hosts: str) -> None:
    assert allow_list_pattern(template).fullmatch(hosts)


@pytest.mark.parametrize("hosts", REFUSED_HOSTS)
def test_the_allow_list_refuses_anything_but_hosts_and_ports(
    template: Template, hosts: str
) -> None:
    assert not allow_list_pattern(template).fullmatch(hosts)


def test_the_allow_list_is_a_plain_string_empty_unless_given(template: Template) -> None:
    parameter = template["Parameters"][ALLOW_LIST]

    # Not an SSM parameter type: its value changes only with a deploy.
    assert parameter["Type"] == "String"
    assert parameter["Default"] == ""
    assert int(parameter["MaxLength"]) > len("api.processor.example:8443,pay.processor.example")


# ---------------------------------------------------------------- Rules


def refusals(template: Template, values: dict[str, str]) -> list[str]:
    """The AssertDescription of each rule these parameter values break (Rules evaluated as
    CloudFormation does before it creates a change set: RuleCondition, then each Assert)."""
    for name, value in values.items():
        template["Parameters"][name]["Default"] = value
    resolver = Resolver(template, "rules")
    return [
        assertion["AssertDescription"]
        for rule in template.get("Rules", {}).values()
        if resolver.resolve(rule.get("RuleCondition", True))
        for assertion in rule["Assertions"]
        if not resolver.resolve(assertion["Assert"])
    ]


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({}, False),
        ({"Processor": "stripe"}, False),
        ({"Processor": "forward", ALLOW_LIST: "api.processor.example"}, False),
        ({"Processor": "forward"}, True),
        ({"Processor": "forward", ALLOW_LIST: ""}, True),
    ],
)
def test_a_forwarding_stack_without_hosts_is_refused(
    template: Template, values: dict[str, str], refused: bool
) -> None:
    found = refusals(template, values)

    assert bool(found) is refused, found
    assert all(ALLOW_LIST in description for description in found)


def test_the_rules_evaluator_sees_the_templates_other_rules(template: Template) -> None:
    # The same evaluation refuses a custom domain without its certificate.
    assert refusals(template, {"DomainName": "api.shop.example"}) != []


# ---------------------------------------------------------------- never from a request


def _references(value: Any, name: str, path: str = "") -> Iterator[str]:
    """The paths under `value` that refer to `name` (Ref, or ${name} in a Sub)."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _references(item, name, f"{path}/{index}")
    elif isinstance(value, dict):
        if name in referenced_ids(value) and ("Ref" in value or "Fn::Sub" in value):
            yield path
            return
        for key, item in value.items():
            yield from _references(item, name, f"{path}/{key}")


def _environment(template: Template, function_id: str) -> dict[str, Any]:
    own = template["Resources"][function_id]["Properties"]["Environment"]["Variables"]
    variables: dict[str, Any] = template["Globals"]["Function"]["Environment"]["Variables"]
    return variables | own


def test_the_allow_list_reaches_both_functions_from_the_parameter_and_nothing_else(
    template: Template,
) -> None:
    for function_id in (PAYMENTS, RECONCILER):
        assert _environment(template, function_id)[HOSTS_VARIABLE] == {"Ref": ALLOW_LIST}
    # and the parameter is used nowhere else but in the rule and on the version it publishes
    assert set(_references(template, ALLOW_LIST)) == {
        f"/Resources/{PAYMENTS}/Properties/Environment/Variables/{HOSTS_VARIABLE}",
        f"/Resources/{RECONCILER}/Properties/Environment/Variables/{HOSTS_VARIABLE}",
        f"/Resources/{PAYMENTS}/Properties/VersionDescription",
        "/Rules/ForwardingNeedsItsAllowedHosts/Assertions/0/Assert/Fn::Not/0/Fn::Equals/0",
    }
    # and no other function is told about hosts
    for function_id in resources_of_type(template, "AWS::Serverless::Function"):
        if function_id not in (PAYMENTS, RECONCILER):
            assert HOSTS_VARIABLE not in _environment(template, function_id), function_id


# What each variable of the two functions may name: a parameter (fixed at deploy), or a table,
# secret or key of the stack (their names and ARNs). No API, stage or request.
DEPLOY_TIME_TYPES = {
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::KMS::Key",
}


@pytest.mark.parametrize("function_id", [PAYMENTS, RECONCILER])
def test_no_variable_of_the_processor_functions_derives_from_a_request(
    template: Template, function_id: str
) -> None:
    resources = template["Resources"]
    allowed = set(template["Parameters"]) | {
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] in DEPLOY_TIME_TYPES
    }

    for name, value in _environment(template, function_id).items():
        assert referenced_ids(value) <= allowed, name
        # no dynamic reference either ({{resolve:ssm:...}} changes without a deploy)
        assert "{{resolve:" not in json.dumps(value), name


def _integrations(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        for item in value:
            yield from _integrations(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "x-amazon-apigateway-integration":
                yield item
            else:
                yield from _integrations(item)


@pytest.mark.parametrize("processor", PROCESSOR_PARAMETERS)
def test_a_request_reaches_the_functions_only_as_their_event(processor: str) -> None:
    # Given the template as CloudFormation gets it, with this processor and the checkout page
    output = sam_transform(
        packaged(), {**PROCESSOR_PARAMETERS[processor], "CheckoutPage": "enabled"}
    )
    resources = output["Resources"]
    integrations = list(_integrations(resources["CardTokensApi"]["Properties"]["Body"]))

    # Then every route is a Lambda proxy integration: no request parameter mapping and no
    # request template that could turn request data into anything but the invocation event
    assert integrations
    for integration in integrations:
        assert set(integration) == {"httpMethod", "type", "uri"}, integration
        assert integration["type"] == "aws_proxy"
    # no stage variables, which a request could read
    for stage in resources_of_type(output, "AWS::ApiGateway::Stage").values():
        assert "Variables" not in stage["Properties"]
    # and each function's environment is the template's, as written
    source = packaged()
    for function_id in (PAYMENTS, RECONCILER):
        deployed = resources[function_id]["Properties"]["Environment"]["Variables"]
        assert deployed == _environment(source, function_id), function_id
