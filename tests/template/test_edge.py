"""template.yaml's edge: the AWS WAF web ACL on the REST API stage, its logs, TLS and the domain.

PCI DSS 4.0 6.4.2 asks for an automated technical solution in front of the public web
application that detects and prevents web-based attacks. docs/deploy.md "Edge protection"
explains the choice (a REST API with a regional web ACL) and every rule; these tests hold the
template to it.
AWS WAF itself cannot run here: what is checked is the configuration, and, where a rule is ours
(a regular expression, a size), what it matches.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from card_tokens.api import error_response
from card_tokens.errors import PayloadTooLarge
from card_tokens.request_body import MAX_BODY_BYTES
from local.cfn import resources_of_type
from local.http_api import STAGE
from tests.template.sam import packaged, sam_transform

Template = dict[str, Any]

MANAGED_GROUPS = {
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
}
# Bytes of body that API Gateway forwards to AWS WAF for each AssociationConfig setting.
INSPECTION_LIMITS = {"KB_16": 16 * 1024, "KB_32": 32 * 1024, "KB_48": 48 * 1024, "KB_64": 64 * 1024}


def translated(monkeypatch: pytest.MonkeyPatch, parameters: dict[str, str]) -> Template:
    return sam_transform(packaged(), parameters)


def web_acl(template: Template) -> dict[str, Any]:
    acls = resources_of_type(template, "AWS::WAFv2::WebACL")
    assert set(acls) == {"ApiWebAcl"}
    properties: dict[str, Any] = acls["ApiWebAcl"]["Properties"]
    return properties


def rules(template: Template) -> dict[str, dict[str, Any]]:
    """The web ACL's rules by name; the optional Bot Control rule unwrapped from its Fn::If."""
    found = {}
    for rule in web_acl(template)["Rules"]:
        if "Fn::If" in rule:
            condition, rule, otherwise = rule["Fn::If"]
            assert (condition, otherwise) == ("UsesBotControl", {"Ref": "AWS::NoValue"})
        found[rule["Name"]] = rule
    return found


def managed_group(rule: dict[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = rule["Statement"]["ManagedRuleGroupStatement"]
    return statement


# ---------------------------------------------------------------- the web ACL and its stage


def test_a_regional_web_acl_guards_the_api_stage_and_allows_what_no_rule_blocks(
    template: Template,
) -> None:
    acl = web_acl(template)
    association = resources_of_type(template, "AWS::WAFv2::WebACLAssociation")

    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    assert association == {
        "ApiWebAclAssociation": {
            "Type": "AWS::WAFv2::WebACLAssociation",
            "Properties": {
                "ResourceArn": {
                    "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/"
                    "${CardTokensApi}/stages/${CardTokensApi.Stage}"
                },
                "WebACLArn": {"Fn::GetAtt": ["ApiWebAcl", "Arn"]},
            },
        }
    }
    assert "Condition" not in template["Resources"]["ApiWebAcl"]


def test_the_association_names_the_stage_sam_creates(monkeypatch: pytest.MonkeyPatch) -> None:
    output = translated(monkeypatch, {})
    (stage_id,) = resources_of_type(output, "AWS::ApiGateway::Stage")
    association = output["Resources"]["ApiWebAclAssociation"]["Properties"]

    # A reference to the stage resource: CloudFormation associates once the stage exists.
    assert output["Resources"][stage_id]["Properties"]["StageName"] == STAGE
    assert association["ResourceArn"]["Fn::Sub"].endswith(f"/stages/${{{stage_id}}}")


def test_every_rule_and_the_acl_report_cloudwatch_metrics_and_samples(template: Template) -> None:
    acl = web_acl(template)
    found = rules(template)

    priorities = [rule["Priority"] for rule in found.values()]
    assert len(set(priorities)) == len(priorities)
    for visibility in [acl["VisibilityConfig"], *(r["VisibilityConfig"] for r in found.values())]:
        assert visibility["CloudWatchMetricsEnabled"] is True
        assert visibility["SampledRequestsEnabled"] is True
    assert all(
        found[name]["VisibilityConfig"]["MetricName"] == name
        for name in found
        if not name.startswith("AWS-")
    )


# ---------------------------------------------------------------- rate limits


TOKENS_PATHS = ["/tokens", "/v1/tokens", "/tokens/", "/v1/tokens/"]
OTHER_PATHS = ["/payments", "/v1/payments/pay_1", "/.well-known/jwks.json", "/tokens/x", "/"]


def _tokens_regex(statement: dict[str, Any]) -> str:
    regex: str = statement["RegexMatchStatement"]["RegexString"]
    assert statement["RegexMatchStatement"]["FieldToMatch"] == {"UriPath": {}}
    return regex


def test_post_tokens_has_a_per_client_ip_rate_limit_from_a_parameter(template: Template) -> None:
    rule = rules(template)["TokensRatePerIp"]
    rate = rule["Statement"]["RateBasedStatement"]
    parameter = template["Parameters"]["WafTokensRateLimit"]

    assert rate["Limit"] == {"Ref": "WafTokensRateLimit"}
    assert (rate["AggregateKeyType"], rate["EvaluationWindowSec"]) == ("IP", 300)
    # AWS WAF's smallest rate limit is 10 per window.
    assert parameter["MinValue"] >= 10
    assert parameter["MinValue"] <= parameter["Default"]
    method, path = rate["ScopeDownStatement"]["AndStatement"]["Statements"]
    assert method["ByteMatchStatement"]["FieldToMatch"] == {"Method": {}}
    assert method["ByteMatchStatement"]["PositionalConstraint"] == "EXACTLY"
    assert method["ByteMatchStatement"]["SearchString"] == "POST"
    regex = re.compile(_tokens_regex(path))
    # AWS WAF searches the path (a match anywhere); the stage prefix comes and goes.
    assert all(regex.search(p) for p in TOKENS_PATHS)
    assert not any(regex.search(p) for p in OTHER_PATHS)
    assert rule["Action"] == {
        "Block": {
            "CustomResponse": {"ResponseCode": 429, "CustomResponseBodyKey": "too-many-requests"}
        }
    }


def test_every_route_has_a_looser_per_client_ip_rate_limit(template: Template) -> None:
    rate = rules(template)["ApiRatePerIp"]["Statement"]["RateBasedStatement"]
    parameters = template["Parameters"]

    assert rate == {
        "Limit": {"Ref": "WafApiRateLimit"},
        "EvaluationWindowSec": 300,
        "AggregateKeyType": "IP",
    }
    assert parameters["WafApiRateLimit"]["Default"] > parameters["WafTokensRateLimit"]["Default"]
    assert parameters["WafApiRateLimit"]["MinValue"] >= 10


def test_a_rate_limited_client_gets_the_contracts_429_shape(template: Template) -> None:
    bodies = web_acl(template)["CustomResponseBodies"]

    assert bodies["too-many-requests"]["ContentType"] == "APPLICATION_JSON"
    # The shape of API Gateway's own throttling answer (openapi.yaml TooManyRequests).
    assert json.loads(bodies["too-many-requests"]["Content"]) == {"message": "Too Many Requests"}


# ---------------------------------------------------------------- body size


def test_bodies_over_the_contracts_limit_are_blocked_even_when_too_long_to_read(
    template: Template,
) -> None:
    acl = web_acl(template)
    rule = rules(template)["BodyOverContractLimit"]
    size = rule["Statement"]["SizeConstraintStatement"]
    inspected = acl["AssociationConfig"]["RequestBody"]["API_GATEWAY"]["DefaultSizeInspectionLimit"]

    assert size["FieldToMatch"] == {"Body": {"OversizeHandling": "MATCH"}}
    assert (size["ComparisonOperator"], size["Size"]) == ("GT", MAX_BODY_BYTES)
    # AWS WAF reads the whole of any body the contract allows; a longer one is oversize, so
    # MATCH blocks it unread. 16 KB is API Gateway's default: no extra inspection charge.
    assert INSPECTION_LIMITS[inspected] >= MAX_BODY_BYTES
    assert inspected == "KB_16"
    assert rule["Priority"] == min(r["Priority"] for r in rules(template).values())
    assert rule["Action"] == {
        "Block": {
            "CustomResponse": {"ResponseCode": 413, "CustomResponseBodyKey": "payload-too-large"}
        }
    }


def test_the_web_acls_413_is_the_apis_own_413(template: Template) -> None:
    body = web_acl(template)["CustomResponseBodies"]["payload-too-large"]
    api_answer = error_response(PayloadTooLarge())

    assert body["ContentType"] == "APPLICATION_JSON"
    assert api_answer.status_code == 413
    assert json.loads(body["Content"]) == json.loads(str(api_answer.body))


# ---------------------------------------------------------------- managed rules


def test_the_aws_managed_rule_groups_are_on_and_block(template: Template) -> None:
    found = rules(template)
    groups = {
        managed_group(rule)["Name"]: rule
        for rule in found.values()
        if "ManagedRuleGroupStatement" in rule["Statement"]
    }

    assert set(groups) == MANAGED_GROUPS | {"AWSManagedRulesBotControlRuleSet"}
    for name, rule in groups.items():
        assert managed_group(rule)["VendorName"] == "AWS"
        # None: each group's own actions apply (a Count override would only watch).
        assert rule["OverrideAction"] == {"None": {}}, name


def test_only_the_8_kb_body_rule_of_the_core_rule_set_is_set_to_count(template: Template) -> None:
    found = rules(template)
    overrides = {
        managed_group(rule)["Name"]: managed_group(rule).get("RuleActionOverrides", [])
        for rule in found.values()
        if "ManagedRuleGroupStatement" in rule["Statement"]
    }

    # SizeRestrictions_BODY blocks bodies over 8 KB; the contract takes up to 16 KiB, which
    # BodyOverContractLimit enforces. Every other managed rule keeps its own action.
    assert overrides["AWSManagedRulesCommonRuleSet"] == [
        {"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}
    ]
    assert overrides["AWSManagedRulesKnownBadInputsRuleSet"] == []
    assert overrides["AWSManagedRulesAmazonIpReputationList"] == []


def test_the_largest_legitimate_card_request_is_far_below_every_size_rule() -> None:
    # Every field at its longest (openapi.yaml TokenRequest): a few hundred bytes, so neither
    # the 8 KB core rule (counted anyway) nor the 16 KiB one can touch a real card.
    largest = {
        "card_number": "4242 4242 4242 4242 424",
        "exp_month": 12,
        "exp_year": 9999,
        "cvv": "1234",
        "cardholder_name": "O'Brien-" + "Ñ" * 92,
    }
    assert len(json.dumps(largest, ensure_ascii=False).encode()) < 1024


def test_bot_control_is_optional_scoped_to_tokens_and_spares_server_clients(
    template: Template,
) -> None:
    parameter = template["Parameters"]["WafBotControl"]
    rule = rules(template)["AWS-AWSManagedRulesBotControlRuleSet"]
    group = managed_group(rule)

    # Billed on top of the web ACL: off unless asked for.
    assert (parameter["Default"], parameter["AllowedValues"]) == (
        "disabled",
        ["disabled", "enabled"],
    )
    assert template["Conditions"]["UsesBotControl"] == {
        "Fn::Equals": [{"Ref": "WafBotControl"}, "enabled"]
    }
    assert group["ManagedRuleGroupConfigs"] == [
        {"AWSManagedRulesBotControlRuleSet": {"InspectionLevel": "COMMON"}}
    ]
    # Merchant back ends and the card-tokens CLI are HTTP libraries, not browsers.
    assert {o["Name"]: o["ActionToUse"] for o in group["RuleActionOverrides"]} == {
        "CategoryHttpLibrary": {"Count": {}},
        "SignalNonBrowserUserAgent": {"Count": {}},
    }
    regex = re.compile(_tokens_regex(group["ScopeDownStatement"]))
    assert all(regex.search(p) for p in TOKENS_PATHS)
    assert not any(regex.search(p) for p in OTHER_PATHS)


# ---------------------------------------------------------------- logs


def test_waf_logs_go_to_an_aws_waf_logs_group_that_expires(template: Template) -> None:
    group = template["Resources"]["ApiWafLogGroup"]
    logging = resources_of_type(template, "AWS::WAFv2::LoggingConfiguration")

    name = group["Properties"]["LogGroupName"]["Fn::Join"]
    assert name[0] == "-"
    # AWS WAF delivers only to groups named aws-waf-logs-*; the stack's name, then a piece of
    # its id so that a retained group never blocks a stack recreated under the same name.
    assert name[1][:2] == ["aws-waf-logs", {"Ref": "AWS::StackName"}]
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert set(logging) == {"ApiWafLogging"}
    properties = logging["ApiWafLogging"]["Properties"]
    assert properties["ResourceArn"] == {"Fn::GetAtt": ["ApiWebAcl", "Arn"]}
    # The group's ARN without the ":*" that Fn::GetAtt adds, which AWS WAF refuses.
    assert properties["LogDestinationConfigs"] == [
        {
            "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
            "log-group:${ApiWafLogGroup}"
        }
    ]


def test_waf_logs_redact_credentials_and_what_could_carry_card_data(template: Template) -> None:
    properties = template["Resources"]["ApiWafLogging"]["Properties"]
    redacted = properties["RedactedFields"]

    headers = {field["SingleHeader"]["Name"] for field in redacted if "SingleHeader" in field}
    # SigV4 signatures and session tokens; AWS WAF logs no body at all, so no card JSON.
    assert {"authorization", "x-amz-security-token"} <= headers
    assert all(name == name.lower() for name in headers)
    # A client could put anything in the path or the query string (the API's own access log
    # records the route, never the raw path).
    assert {"QueryString": {}} in redacted
    assert {"UriPath": {}} in redacted


def test_waf_logs_keep_what_a_rule_blocked_or_counted(template: Template) -> None:
    log_filter = template["Resources"]["ApiWafLogging"]["Properties"]["LoggingFilter"]

    assert log_filter["DefaultBehavior"] == "DROP"
    (kept,) = log_filter["Filters"]
    assert (kept["Behavior"], kept["Requirement"]) == ("KEEP", "MEETS_ANY")
    assert {c["ActionCondition"]["Action"] for c in kept["Conditions"]} == {
        "BLOCK",
        "COUNT",
        "EXCLUDED_AS_COUNT",
    }


# ---------------------------------------------------------------- TLS and the custom domain


def test_the_execute_api_endpoint_negotiates_tls_1_2_at_least(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output = translated(monkeypatch, {})
    api = output["Resources"]["CardTokensApi"]["Properties"]

    # A Regional API's default security policy is TLS_1_0.
    assert api["SecurityPolicy"] == "TLS_1_2"
    assert api["EndpointConfiguration"] == {"Types": ["REGIONAL"]}


def test_the_custom_domain_is_regional_tls_1_2_and_switches_execute_api_off(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = template["Resources"]
    domain = resources["CardTokensDomainName"]
    mapping = resources["CardTokensBasePathMapping"]

    assert template["Conditions"]["HasCustomDomain"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "DomainName"}, ""]}]
    }
    assert domain["Condition"] == mapping["Condition"] == "HasCustomDomain"
    assert domain["Properties"] == {
        "DomainName": {"Ref": "DomainName"},
        "RegionalCertificateArn": {"Ref": "CertificateArn"},
        "EndpointConfiguration": {"Types": ["REGIONAL"]},
        "SecurityPolicy": "TLS_1_2",
    }
    # Mapped at the root: the same paths as the local stack, no stage prefix.
    assert mapping["Properties"] == {
        "DomainName": {"Ref": "CardTokensDomainName"},
        "RestApiId": {"Ref": "CardTokensApi"},
        "Stage": {"Ref": "CardTokensApi.Stage"},
    }
    api = resources["CardTokensApi"]["Properties"]
    assert api["DisableExecuteApiEndpoint"] == {"Fn::If": ["HasCustomDomain", True, False]}
    output = translated(monkeypatch, {"DomainName": "api.shop.example"})
    (server,) = output["Resources"]["CardTokensApi"]["Properties"]["Body"]["servers"]
    assert server["x-amazon-apigateway-endpoint-configuration"] == {
        "disableExecuteApiEndpoint": {"Fn::If": ["HasCustomDomain", True, False]}
    }


def test_domain_and_certificate_go_together(template: Template) -> None:
    parameters = template["Parameters"]
    rules_ = template["Rules"]

    assert parameters["DomainName"]["Default"] == parameters["CertificateArn"]["Default"] == ""
    assert re.fullmatch(parameters["DomainName"]["AllowedPattern"], "api.shop.example")
    assert not re.fullmatch(parameters["DomainName"]["AllowedPattern"], "https://api.shop")
    assert re.fullmatch(
        parameters["CertificateArn"]["AllowedPattern"],
        "arn:aws:acm:eu-west-1:111122223333:certificate/0a1b2c3d-1111-2222-3333-444455556666",
    )
    assert rules_["CustomDomainNeedsItsCertificate"]["RuleCondition"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "DomainName"}, ""]}]
    }
    assert rules_["CertificateNeedsItsDomain"]["RuleCondition"] == {
        "Fn::Equals": [{"Ref": "DomainName"}, ""]
    }


def test_the_outputs_give_the_custom_domain_url_when_there_is_one(template: Template) -> None:
    outputs = template["Outputs"]

    assert outputs["ApiUrl"]["Value"] == {
        "Fn::If": [
            "HasCustomDomain",
            {"Fn::Sub": "https://${DomainName}"},
            {
                "Fn::Sub": "https://${CardTokensApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
                "/${CardTokensApi.Stage}"
            },
        ]
    }
    assert outputs["ApiRegionalDomainName"]["Condition"] == "HasCustomDomain"
    assert outputs["ApiRegionalDomainName"]["Value"] == {
        "Fn::GetAtt": ["CardTokensDomainName", "RegionalDomainName"]
    }


# ---------------------------------------------------------------- API Gateway's logging role


def test_the_stage_is_created_after_the_accounts_logging_role_is_set(template: Template) -> None:
    parameter = template["Parameters"]["ApiGatewayLogsRole"]
    group = template["Resources"]["CardTokensApiAccessLogGroup"]["Properties"]

    # A REST API stage with access logs fails to create in a region whose API Gateway account
    # settings name no CloudWatch role; the default creates one.
    assert (parameter["Default"], parameter["AllowedValues"]) == ("create", ["create", "existing"])
    assert template["Conditions"]["SetsApiGatewayLogsRole"] == {
        "Fn::Equals": [{"Ref": "ApiGatewayLogsRole"}, "create"]
    }
    # The stage logs to this group, and the group refers to the account setting.
    assert group["Tags"] == [
        {
            "Key": "api-gateway-logs-role",
            "Value": {
                "Fn::If": ["SetsApiGatewayLogsRole", {"Ref": "ApiGatewayAccount"}, "existing"]
            },
        }
    ]
    for resource_id in ("ApiGatewayAccount", "ApiGatewayCloudWatchRole"):
        assert template["Resources"][resource_id]["DeletionPolicy"] == "Retain"
