"""template.yaml's operations: throttling, access logs, IAM auth, CORS, alarms, concurrency, scans.

Some checks run the SAM transform itself (samtranslator, offline), because what reaches API
Gateway is the transformed template: SAM writes the routes' authorization, integrations and
gateway responses into the OpenAPI body, and the stage's settings into AWS::ApiGateway::Stage.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from local.cfn import resources_of_type
from tests.template.sam import packaged, sam_transform

Template = dict[str, Any]

API_FUNCTIONS = {"IssueTokenFunction": "IssueToken", "ProcessPaymentFunction": "ProcessPayment"}
IAM_ROUTES = {("post", "/payments"), ("get", "/payments/{payment_id}")}
OPEN_ROUTES = {("post", "/tokens"), ("options", "/tokens"), ("get", "/.well-known/jwks.json")}
# Only with CheckoutPage=enabled: the static demo page, open like /tokens.
PAGE_ROUTES = {("get", "/"), ("get", "/app.js"), ("get", "/style.css"), ("get", "/favicon.svg")}
# API Gateway context variables the access log may use: who, when, which route, what outcome.
# (REST API variables: the route is $context.httpMethod and $context.resourcePath, the declared
# path with its {payment_id}, never the raw path a client wrote.)
METADATA_VARIABLES = {
    "$context.requestId",
    "$context.identity.sourceIp",
    "$context.requestTime",
    "$context.httpMethod",
    "$context.resourcePath",
    "$context.status",
    "$context.responseLatency",
    "$context.integrationLatency",
    "$context.responseLength",
    "$context.identity.userArn",
    "$context.identity.accountId",
    "$context.authorize.error",
    "$context.error.message",
    "$context.error.responseType",
    "$context.integrationErrorMessage",
    "$context.wafResponseCode",
    "$context.tlsVersion",
}


def translated(parameter_values: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Template:
    """What CloudFormation's AWS::Serverless transform makes of template.yaml."""
    return sam_transform(packaged(), parameter_values)


def openapi_body(output: Template) -> dict[str, Any]:
    body: dict[str, Any] = output["Resources"]["CardTokensApi"]["Properties"]["Body"]
    return body


def version_alarm_ids(template: Template) -> set[str]:
    """The rollback alarms that watch one version behind `live` (tests/template/test_rollout.py):
    their runbook is docs/rollout.md. ApiServerErrorRateAlarm rolls deploys back too, and is
    operational."""
    return {
        alarm_id
        for alarm_id, alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").items()
        if any(d["Name"] == "ExecutedVersion" for d in alarm["Properties"].get("Dimensions", []))
    }


def alarms(template: Template) -> dict[str, dict[str, Any]]:
    """The operational alarms (docs/operate.md): every alarm but the per-version ones."""
    per_version = version_alarm_ids(template)
    return {
        alarm_id: alarm
        for alarm_id, alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").items()
        if alarm_id not in per_version
    }


# ---------------------------------------------------------------- throttling and concurrency


def test_stage_throttling_of_every_method_comes_from_parameters(template: Template) -> None:
    settings = template["Resources"]["CardTokensApi"]["Properties"]["MethodSettings"]
    parameters = template["Parameters"]

    assert settings == [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
            "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        }
    ]
    assert parameters["ApiThrottlingBurstLimit"]["Default"] == 200
    assert parameters["ApiThrottlingRateLimit"]["Default"] == 100
    assert parameters["ApiThrottlingBurstLimit"]["MinValue"] >= 1


def test_throttling_reaches_the_stage_after_the_transform(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output = translated({}, monkeypatch)
    stages = resources_of_type(output, "AWS::ApiGateway::Stage")

    # One stage (OpenApiVersion 3: SAM adds no "Stage" stage), v1, throttled on every method.
    assert len(stages) == 1
    (stage,) = stages.values()
    assert stage["Properties"]["StageName"] == "v1"
    (settings,) = stage["Properties"]["MethodSettings"]
    assert (settings["ResourcePath"], settings["HttpMethod"]) == ("/*", "*")
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    assert stage["Properties"]["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": ["CardTokensApiAccessLogGroup", "Arn"]
    }


@pytest.mark.parametrize(("function_id", "prefix"), API_FUNCTIONS.items())
def test_reserved_concurrency_is_a_parameter_and_zero_means_unreserved(
    template: Template, function_id: str, prefix: str
) -> None:
    parameter = template["Parameters"][f"{prefix}ReservedConcurrency"]
    function = template["Resources"][function_id]["Properties"]

    assert (parameter["Default"], parameter["MinValue"]) == (0, 0)
    assert function["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            f"Reserves{prefix}Concurrency",
            {"Ref": f"{prefix}ReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert template["Conditions"][f"Reserves{prefix}Concurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": f"{prefix}ReservedConcurrency"}, 0]}]
    }


# ---------------------------------------------------------------- access logs


def test_access_log_is_json_with_request_metadata_and_nothing_from_the_request(
    template: Template,
) -> None:
    settings = template["Resources"]["CardTokensApi"]["Properties"]["AccessLogSetting"]
    log_format = settings["Format"]

    fields = json.loads(log_format)

    assert settings["DestinationArn"] == {"Fn::GetAtt": ["CardTokensApiAccessLogGroup", "Arn"]}
    assert {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "routeKey": "$context.httpMethod $context.resourcePath",
        "status": "$context.status",
        "latency": "$context.responseLatency",
        "caller": "$context.identity.userArn",
        "waf": "$context.wafResponseCode",
    }.items() <= fields.items()
    # Only request metadata: API Gateway has no variable for a body, and none of the header,
    # query string or path parameter variables (which could carry a token) is used.
    assert set(re.findall(r"\$context\.[A-Za-z.]+", log_format)) <= METADATA_VARIABLES


# ---------------------------------------------------------------- authorization


def test_payment_routes_use_aws_iam_and_the_rest_stay_open(template: Template) -> None:
    api = template["Resources"]["CardTokensApi"]["Properties"]
    auth = {}
    for function in resources_of_type(template, "AWS::Serverless::Function").values():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] != "Api":
                continue  # the reconciler's schedule is no route
            properties = event["Properties"]
            route = (properties["Method"].lower(), properties["Path"])
            auth[route] = properties.get("Auth")

    # No API-wide default authorizer: each route says what it needs.
    assert "Auth" not in api
    # InvokeRole NONE: API Gateway invokes through the function's resource policy. SAM's
    # default for AWS_IAM (CALLER_CREDENTIALS) would demand lambda:InvokeFunction of merchants.
    signed = {"Authorizer": "AWS_IAM", "InvokeRole": "NONE"}
    assert {route for route, route_auth in auth.items() if route_auth == signed} == IAM_ROUTES
    assert {route for route, route_auth in auth.items() if route_auth is None} == (
        OPEN_ROUTES | PAGE_ROUTES
    )


def test_the_transformed_api_requires_sigv4_on_exactly_the_payment_routes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = openapi_body(translated({}, monkeypatch))
    # SAM wraps the optional page's routes in Fn::If [condition, operation, AWS::NoValue].
    paths = {
        path: item["Fn::If"][1] if "Fn::If" in item else item
        for path, item in body["paths"].items()
    }

    secured = {
        (method, path)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if operation.get("security") == [{"AWS_IAM": []}]
    }
    unsecured = {
        (method, path)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "security" not in operation
    }

    assert secured == IAM_ROUTES
    assert unsecured == OPEN_ROUTES | PAGE_ROUTES
    scheme = body["components"]["securitySchemes"]["AWS_IAM"]
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
    # Every route is a Lambda proxy integration invoked with API Gateway's own permission,
    # never with the caller's credentials.
    for operations in paths.values():
        for operation in operations.values():
            # The optional page's operations are wrapped in Fn::If once more.
            operation = operation["Fn::If"][1] if "Fn::If" in operation else operation
            integration = operation["x-amazon-apigateway-integration"]
            assert (integration["type"], integration["httpMethod"]) == ("aws_proxy", "POST")
            assert "credentials" not in integration


def test_unknown_routes_get_the_contracts_404_not_a_missing_token_403(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = openapi_body(translated({}, monkeypatch))

    # A REST API answers an unknown path or method with MISSING_AUTHENTICATION_TOKEN (403);
    # so does it an unsigned request to an IAM route (README, openapi.yaml).
    assert body["x-amazon-apigateway-gateway-responses"] == {
        "MISSING_AUTHENTICATION_TOKEN": {
            "statusCode": "404",
            "responseParameters": {},
            "responseTemplates": {"application/json": '{"message":"Not Found"}'},
        }
    }
    from local.http_api import NOT_FOUND

    assert json.loads(
        body["x-amazon-apigateway-gateway-responses"]["MISSING_AUTHENTICATION_TOKEN"][
            "responseTemplates"
        ]["application/json"]
    ) == json.loads(NOT_FOUND.body)


# ---------------------------------------------------------------- CORS


ACCEPTED_ORIGINS = [
    "",
    "https://shop.example",
    "https://shop.example,https://checkout.shop.example:8443",
    "http://localhost:5173",
]
REFUSED_ORIGINS = [
    "*",
    "https://*.example",
    "http://shop.example",
    "https://shop.example/",
    "https://shop.example,*",
    "https://shop.example, https://other.example",
    "null",
]


def cors_pattern(template: Template) -> re.Pattern[str]:
    return re.compile(template["Parameters"]["CorsOrigins"]["AllowedPattern"])


@pytest.mark.parametrize("origins", ACCEPTED_ORIGINS)
def test_cors_origins_accepts_exact_https_origins(template: Template, origins: str) -> None:
    assert cors_pattern(template).fullmatch(origins)


@pytest.mark.parametrize("origins", REFUSED_ORIGINS)
def test_cors_origins_refuses_wildcards_and_plain_http(template: Template, origins: str) -> None:
    assert not cors_pattern(template).fullmatch(origins)


def test_no_api_level_cors_and_the_function_gets_the_origins(template: Template) -> None:
    api = template["Resources"]["CardTokensApi"]["Properties"]
    function = template["Resources"]["IssueTokenFunction"]["Properties"]

    assert template["Parameters"]["CorsOrigins"]["Default"] == ""
    # SAM's Cors would answer every route's preflight with one fixed origin.
    assert "Cors" not in api
    assert function["Environment"]["Variables"]["CORS_ORIGINS"] == {"Ref": "CorsOrigins"}
    assert function["Events"]["IssueTokenPreflight"]["Properties"] == {
        "RestApiId": {"Ref": "CardTokensApi"},
        "Method": "OPTIONS",
        "Path": "/tokens",
    }


@pytest.mark.parametrize("origins", ACCEPTED_ORIGINS)
def test_the_function_accepts_every_origin_the_parameter_accepts(
    template: Template, origins: str
) -> None:
    from card_tokens.cors import parse_origins

    assert parse_origins(origins) == frozenset(o for o in origins.split(",") if o)


@pytest.mark.parametrize("origins", [o for o in REFUSED_ORIGINS if "," not in o or "*" in o])
def test_the_function_refuses_what_the_parameter_refuses(origins: str) -> None:
    from card_tokens.cors import InvalidOrigins, parse_origins

    with pytest.raises(InvalidOrigins):
        parse_origins(origins)


# ---------------------------------------------------------------- alarms


def test_alarm_topic_is_an_optional_sns_arn_parameter(template: Template) -> None:
    # Placeholder ARNs and the stack's own topic: tests/template/test_alerts.py.
    parameter = template["Parameters"]["AlarmTopicArn"]
    pattern = re.compile(parameter["AllowedPattern"])

    assert parameter["Default"] == ""
    assert pattern.fullmatch("")
    assert pattern.fullmatch("arn:aws:sns:eu-west-1:210987654321:card-tokens-alarms")
    assert not pattern.fullmatch("card-tokens-alarms")
    assert template["Conditions"]["CreatesAlarmTopic"] == {
        "Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]
    }


# No data is no traffic, never an incident, except for the reconciler: it runs every five
# minutes whatever the traffic, so an Errors metric without data means it stopped running, and
# in-doubt payments then stay unsettled just as when it fails.
MISSING_DATA_BREACHES = {"ReconcilerErrorsAlarm"}


# The stack's own topic, or the one AlarmTopicArn names.
CHOSEN_TOPIC = {"Fn::If": ["CreatesAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}


def test_every_alarm_always_exists_and_notifies_the_chosen_topic(template: Template) -> None:
    found = alarms(template)

    assert found
    assert set(found) >= MISSING_DATA_BREACHES
    for alarm_id, alarm in found.items():
        properties = alarm["Properties"]
        assert "Condition" not in alarm, alarm_id
        assert properties["AlarmActions"] == [CHOSEN_TOPIC], alarm_id
        assert properties["OKActions"] == [CHOSEN_TOPIC], alarm_id
        expected = "breaching" if alarm_id in MISSING_DATA_BREACHES else "notBreaching"
        assert properties["TreatMissingData"] == expected, alarm_id
        assert "Runbook: docs/operate.md" in properties["AlarmDescription"], alarm_id


def _lambda_alarm_metrics(template: Template) -> set[tuple[str, str]]:
    return {
        (alarm["Properties"]["MetricName"], alarm["Properties"]["Dimensions"][0]["Value"]["Ref"])
        for alarm in alarms(template).values()
        if alarm["Properties"].get("Namespace") == "AWS/Lambda"
    }


def test_every_function_alarms_on_errors_and_throttles(template: Template) -> None:
    # The optional demo page (CheckoutPage=enabled) serves static files: no alarms of its own.
    functions = {
        name: function
        for name, function in resources_of_type(template, "AWS::Serverless::Function").items()
        if "Condition" not in function
    }

    assert _lambda_alarm_metrics(template) == {
        (metric, function_id) for function_id in functions for metric in ("Errors", "Throttles")
    }


def test_a_failed_rotation_raises_its_own_alarm(template: Template) -> None:
    alarm = alarms(template)["RotationFailureAlarm"]["Properties"]

    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    assert alarm["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": "RotateSigningKeyFunction"}}
    ]


def test_a_reconciler_failing_or_silent_for_three_sweeps_raises_its_alarm(
    template: Template,
) -> None:
    alarm = alarms(template)["ReconcilerErrorsAlarm"]["Properties"]
    events = template["Resources"]["ReconcilePaymentsFunction"]["Properties"]["Events"]

    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    assert alarm["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": "ReconcilePaymentsFunction"}}
    ]
    # One period per sweep, three in a row: a single failed or late sweep is redone by the next.
    assert events["Sweep"]["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (300, 3, 3)
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["TreatMissingData"] == "breaching"


def test_the_5xx_rate_alarm_divides_5xx_by_requests_of_this_api(template: Template) -> None:
    alarm = alarms(template)["ApiServerErrorRateAlarm"]["Properties"]
    metrics = {query["Id"]: query for query in alarm["Metrics"]}

    assert alarm["Threshold"] == {"Ref": "Api5xxRatePercentThreshold"}
    assert [query["Id"] for query in alarm["Metrics"] if query.get("ReturnData")] == ["rate"]
    assert "100 * errors / requests" in metrics["rate"]["Expression"]
    # REST API metrics (5XXError, Count) by ApiName and Stage: the API is named after SAM's
    # OpenAPI title, the stack name.
    for metric_id, name in (("errors", "5XXError"), ("requests", "Count")):
        metric = metrics[metric_id]["MetricStat"]["Metric"]
        assert (metric["Namespace"], metric["MetricName"]) == ("AWS/ApiGateway", name)
        assert metric["Dimensions"] == [
            {"Name": "ApiName", "Value": {"Ref": "AWS::StackName"}},
            {"Name": "Stage", "Value": {"Ref": "CardTokensApi.Stage"}},
        ]


def test_the_api_is_named_as_the_alarms_say(monkeypatch: pytest.MonkeyPatch) -> None:
    output = translated({}, monkeypatch)
    api = output["Resources"]["CardTokensApi"]["Properties"]

    assert "Name" not in api
    assert api["Body"]["info"]["title"] == {"Ref": "AWS::StackName"}


def test_dependency_alarm_reads_the_metric_the_functions_emit(template: Template) -> None:
    # KMS, Secrets Manager and DynamoDB failures after retries: card_tokens/api.py counts them.
    alarm = alarms(template)["DependencyUnavailableAlarm"]["Properties"]
    environment = template["Globals"]["Function"]["Environment"]["Variables"]

    assert alarm["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["MetricName"] == "DependencyUnavailable"
    assert alarm["Dimensions"] == [
        {"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}
    ]


def test_dependency_metric_name_matches_the_layer(template: Template) -> None:
    from card_tokens.api import DEPENDENCY_UNAVAILABLE_METRIC

    alarm = alarms(template)["DependencyUnavailableAlarm"]["Properties"]
    assert alarm["MetricName"] == DEPENDENCY_UNAVAILABLE_METRIC


def test_dynamodb_throttle_alarm_covers_reads_and_writes_of_every_table(
    template: Template,
) -> None:
    alarm = alarms(template)["DynamoDbThrottleAlarm"]["Properties"]
    tables = resources_of_type(template, "AWS::DynamoDB::Table")

    watched = {
        (query["MetricStat"]["Metric"]["MetricName"], dimension["Value"]["Ref"])
        for query in alarm["Metrics"]
        if "MetricStat" in query
        for dimension in query["MetricStat"]["Metric"]["Dimensions"]
    }

    assert watched == {
        (metric, table)
        for table in tables
        for metric in ("ReadThrottleEvents", "WriteThrottleEvents")
    }


def test_every_alarm_survives_the_transform_with_its_condition(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = translated({}, monkeypatch)
    transformed = resources_of_type(output, "AWS::CloudWatch::Alarm")
    written = resources_of_type(template, "AWS::CloudWatch::Alarm")

    assert set(transformed) == set(written)
    assert set(alarms(template)) < set(written)
    for alarm_id, alarm in transformed.items():
        # No topic condition: only the checkout page's rollback alarms come and go, with it
        assert alarm.get("Condition") == written[alarm_id].get("Condition"), alarm_id
        assert alarm.get("Condition") in (None, "ServesCheckoutPage"), alarm_id
        assert alarm["Properties"]["AlarmActions"] == [CHOSEN_TOPIC], alarm_id
        assert alarm["Properties"]["OKActions"] == [CHOSEN_TOPIC], alarm_id


# ---------------------------------------------------------------- tracing and scanning


def test_functions_trace_with_xray(template: Template) -> None:
    assert template["Globals"]["Function"]["Tracing"] == "Active"


def test_every_checkov_suppression_carries_its_reason(template: Template) -> None:
    suppressed = 0
    for resource_id, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            suppressed += 1
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), resource_id
            assert len(skip.get("comment", "").split()) >= 8, (resource_id, skip["id"])

    assert suppressed > 0
