"""Alerts that reach someone: the alarm topic, placeholder refusal, the alarms and the dashboard.

Every alarm exists in every stack and notifies the chosen topic: the stack's own encrypted
AlarmTopic, or the existing topic AlarmTopicArn names. Placeholder values (AWS documentation
account ids, reserved example e-mail domains) are refused by the parameters themselves.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, get_args

import pytest

from local.cfn import resources_of_type
from local.intrinsics import Resolver

Template = dict[str, Any]

CHOSEN_TOPIC = {"Fn::If": ["CreatesAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
OWN_TOPIC_NAME = {"Fn::Sub": "${AWS::StackName}-alarms"}
OWN_TOPIC_ARN = (
    "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-alarms"
)

# ---------------------------------------------------------------- placeholder refusal

# AWS documentation accounts (and the all-zero one) in every spelling a copied example takes.
PLACEHOLDER_TOPIC_ARNS = [
    "arn:aws:sns:us-east-1:111122223333:card-tokens-prod-alarms",
    "arn:aws:sns:eu-west-1:111122223333:alarms",
    "arn:aws:sns:us-east-1:123456789012:MyTopic",
    "arn:aws-cn:sns:cn-north-1:123456789012:alarms",
    "arn:aws:sns:us-east-1:000000000000:alarms",
    "arn:aws-us-gov:sns:us-gov-west-1:444455556666:alarms",
]
REAL_TOPIC_ARNS = [
    "",
    "arn:aws:sns:us-east-1:210987654321:card-tokens-prod-alarms",
    "arn:aws:sns:eu-west-1:111122223334:alarms",  # one digit away is a real account
    "arn:aws:sns:eu-west-1:011112222333:on_call-alarms",
    "arn:aws-cn:sns:cn-north-1:123456789013:alarms",
]
# Not SNS topic ARNs at all.
MALFORMED_TOPIC_ARNS = [
    "card-tokens-alarms",
    "arn:aws:sqs:us-east-1:210987654321:alarms",
    "arn:aws:sns:us-east-1:21098765432:alarms",
    "arn:aws:sns:us-east-1:210987654321:",
]
PLACEHOLDER_EMAILS = [
    "card-tokens-prod-oncall@REPLACE-BEFORE-DEPLOY.invalid",
    "card-tokens-staging-oncall@REPLACE-BEFORE-DEPLOY.invalid",
    "oncall@example.com",
    "oncall@EXAMPLE.COM",
    "oncall@alerts.example.org",
    "oncall@example.net",
    "oncall@card-tokens.example",
    "oncall@shop.test",
    "root@localhost",
]
REAL_EMAILS = ["", "oncall@company.com", "card-tokens+alarms@ops.company.co.uk", "a@examples.com"]
MALFORMED_EMAILS = ["oncall", "oncall@company", "a@b.com,c@d.com", "on call@company.com", "@x.com"]


def allowed_pattern(template: Template, parameter: str) -> str:
    pattern: str = template["Parameters"][parameter]["AllowedPattern"]
    return pattern


@pytest.mark.parametrize("arn", PLACEHOLDER_TOPIC_ARNS + MALFORMED_TOPIC_ARNS)
def test_alarm_topic_arn_refuses_documentation_accounts_and_non_topics(
    template: Template, arn: str
) -> None:
    # CloudFormation requires the whole value to match AllowedPattern.
    assert not re.fullmatch(allowed_pattern(template, "AlarmTopicArn"), arn)


@pytest.mark.parametrize("arn", REAL_TOPIC_ARNS)
def test_alarm_topic_arn_accepts_empty_or_a_real_topic(template: Template, arn: str) -> None:
    assert re.fullmatch(allowed_pattern(template, "AlarmTopicArn"), arn)


@pytest.mark.parametrize("address", PLACEHOLDER_EMAILS + MALFORMED_EMAILS)
def test_alarm_email_refuses_placeholders_and_lists(template: Template, address: str) -> None:
    assert not re.fullmatch(allowed_pattern(template, "AlarmEmail"), address)


@pytest.mark.parametrize("address", REAL_EMAILS)
def test_alarm_email_accepts_empty_or_one_address(template: Template, address: str) -> None:
    assert re.fullmatch(allowed_pattern(template, "AlarmEmail"), address)


_JAVA_MATCHER = """
import java.nio.file.*;
import java.util.*;
import java.util.regex.Pattern;

public class Matcher {
    public static void main(String[] args) throws Exception {
        List<String> lines = Files.readAllLines(Path.of(args[0]));
        Pattern pattern = Pattern.compile(lines.get(0));
        for (String value : lines.subList(1, lines.size())) {
            System.out.println(pattern.matcher(value).matches());
        }
    }
}
"""


@pytest.mark.skipif(shutil.which("java") is None, reason="needs a JDK (java) on PATH")
@pytest.mark.parametrize(
    ("parameter", "refused", "accepted"),
    [
        ("AlarmTopicArn", PLACEHOLDER_TOPIC_ARNS + MALFORMED_TOPIC_ARNS, REAL_TOPIC_ARNS),
        ("AlarmEmail", PLACEHOLDER_EMAILS + MALFORMED_EMAILS, REAL_EMAILS),
    ],
)
def test_cloudformations_regex_engine_agrees(
    template: Template, tmp_path: Path, parameter: str, refused: list[str], accepted: list[str]
) -> None:
    # CloudFormation evaluates AllowedPattern with java.util.regex.Pattern (matches(): the whole
    # value), not Python's re: run the same cases through Java's engine.
    source = tmp_path / "Matcher.java"
    source.write_text(_JAVA_MATCHER, encoding="utf-8")
    cases = tmp_path / "cases.txt"
    cases.write_text(
        "\n".join([allowed_pattern(template, parameter), *refused, *accepted]) + "\n",
        encoding="utf-8",
    )

    result = subprocess.run(
        ["java", str(source), str(cases)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    verdicts = dict(zip(refused + accepted, result.stdout.split(), strict=True))
    assert verdicts == {**dict.fromkeys(refused, "false"), **dict.fromkeys(accepted, "true")}


# ---------------------------------------------------------------- the topic


def resolver_with(template: Template, **parameters: str) -> Resolver:
    """Conditions and intrinsics as CloudFormation resolves them with these parameter values."""
    template = copy.deepcopy(template)
    for name, value in parameters.items():
        template["Parameters"][name]["Default"] = value
    resolver = Resolver(template, "card-tokens-prod")
    resolver.refs["AlarmTopic"] = "arn:aws:sns:us-east-1:123456789012:card-tokens-prod-alarms"
    return resolver


def test_the_stack_creates_its_own_topic_unless_one_is_given(template: Template) -> None:
    own = resolver_with(template)
    given_arn = "arn:aws:sns:us-east-1:210987654321:on-call"
    given = resolver_with(template, AlarmTopicArn=given_arn)
    own_topic_resources = {"AlarmTopic", "AlarmTopicKey", "AlarmTopicPolicy"}

    for logical_id in own_topic_resources:
        assert template["Resources"][logical_id]["Condition"] == "CreatesAlarmTopic"
    assert own.condition("CreatesAlarmTopic")
    assert not given.condition("CreatesAlarmTopic")
    assert own.resolve(CHOSEN_TOPIC) == own.refs["AlarmTopic"]
    assert given.resolve(CHOSEN_TOPIC) == given_arn


def test_the_own_topic_is_encrypted_under_a_key_only_its_publishers_may_use(
    template: Template,
) -> None:
    resources = template["Resources"]
    topic = resources["AlarmTopic"]["Properties"]
    statements = {
        s["Sid"]: s for s in resources["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    }
    services = statements["AlarmsAndEventsEncryptForThisTopic"]

    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    assert topic["TopicName"] == OWN_TOPIC_NAME
    # The AWS managed SNS key would not let CloudWatch or EventBridge publish; this one lets
    # them encrypt messages of this topic only, and do nothing else.
    assert services["Principal"] == {
        "Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    }
    assert services["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert services["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:aws:sns:topicArn": {"Fn::Sub": OWN_TOPIC_ARN}}
    }
    assert set(statements) == {"AccountAdministersTheKey", "AlarmsAndEventsEncryptForThisTopic"}


def topic_policy_statements(template: Template) -> dict[str, dict[str, Any]]:
    policy = template["Resources"]["AlarmTopicPolicy"]["Properties"]
    assert policy["Topics"] == [{"Ref": "AlarmTopic"}]
    return {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}


def test_only_this_stacks_alarms_may_publish_from_this_account(template: Template) -> None:
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    statement = topic_policy_statements(template)["ThisStacksAlarmsPublish"]
    source_arn = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]

    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Resource"] == {"Ref": "AlarmTopic"}
    assert statement["Condition"]["StringEquals"] == {
        "aws:SourceAccount": {"Ref": "AWS::AccountId"}
    }
    assert source_arn == (
        "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-*"
    )
    # ...which covers every alarm of the stack: they are all named <stack>-...
    for alarm_id, alarm in alarms.items():
        assert alarm["Properties"]["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), (
            alarm_id
        )


def test_alarm_email_subscribes_to_the_own_topic_only_when_set(template: Template) -> None:
    subscription = template["Resources"]["AlarmEmailSubscription"]

    assert subscription["Condition"] == "SubscribesAlarmEmail"
    assert template["Conditions"]["SubscribesAlarmEmail"] == {
        "Fn::And": [
            {"Condition": "CreatesAlarmTopic"},
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
        ]
    }
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    assert not resolver_with(template).condition("SubscribesAlarmEmail")
    assert resolver_with(template, AlarmEmail="oncall@company.com").condition(
        "SubscribesAlarmEmail"
    )
    assert not resolver_with(
        template,
        AlarmEmail="oncall@company.com",
        AlarmTopicArn="arn:aws:sns:us-east-1:210987654321:on-call",
    ).condition("SubscribesAlarmEmail")


def _watched(alarm: dict[str, Any]) -> set[str]:
    """Logical ids of what an alarm's metrics are about (function, API, table). SAM's
    `!Ref CardTokensApi.Stage` is the API's stage; a pseudo parameter (the REST API's ApiName is
    the stack's name) names no resource."""
    properties = alarm["Properties"]
    metrics = [properties] + [
        query["MetricStat"]["Metric"]
        for query in properties.get("Metrics", [])
        if "MetricStat" in query
    ]
    return {
        dimension["Value"]["Ref"].split(".")[0]
        for metric in metrics
        for dimension in metric.get("Dimensions", [])
        if isinstance(dimension["Value"], dict)
        and "Ref" in dimension["Value"]
        and not dimension["Value"]["Ref"].startswith("AWS::")
    }


def test_no_alarm_depends_on_a_topic_condition(template: Template) -> None:
    # An alarm exists whenever what it watches exists (only the checkout page's come and go,
    # with the page), whatever the topic, and always notifies the chosen one.
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    resources = template["Resources"]

    assert alarms
    for alarm_id, alarm in alarms.items():
        watched_conditions = {resources[r].get("Condition") for r in _watched(alarm)} - {None}
        assert watched_conditions <= {"ServesCheckoutPage"}, alarm_id
        assert alarm.get("Condition") == next(iter(watched_conditions), None), alarm_id
        assert alarm["Properties"]["AlarmActions"] == [CHOSEN_TOPIC], alarm_id
        assert alarm["Properties"]["OKActions"] == [CHOSEN_TOPIC], alarm_id


# ---------------------------------------------------------------- what the layer emits

LAYER = Path(__file__).resolve().parents[2] / "layers" / "card_tokens" / "card_tokens"


def _module_constants(tree: ast.Module) -> dict[str, str]:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }


def emitted_metrics() -> dict[str, frozenset[str]]:
    """Metric name → its dimension keys, read from every count(...) call in the layer's source.

    card_tokens.observability.count is the one place that writes metrics (checked below); it
    turns keyword arguments into dimensions, and Powertools adds `service` to each metric.
    """
    found: dict[str, set[frozenset[str]]] = {}
    for source in sorted(LAYER.glob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        constants = _module_constants(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id != "count" or not node.args:
                continue
            argument = node.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                name = argument.value
            elif isinstance(argument, ast.Name) and argument.id in constants:
                name = constants[argument.id]
            else:
                raise AssertionError(f"{source.name}:{node.lineno}: count() of a computed name")
            keys = frozenset(
                {keyword.arg for keyword in node.keywords if keyword.arg} | {"service"}
            )
            found.setdefault(name, set()).add(keys)
    for name, dimension_sets in found.items():
        assert len(dimension_sets) == 1, f"{name} is emitted with several dimension sets"
    return {name: next(iter(sets)) for name, sets in found.items()}


def test_the_layer_writes_metrics_through_count_only() -> None:
    # Otherwise emitted_metrics() would miss some.
    writers = {
        source.name
        for source in LAYER.glob("*.py")
        if re.search(r"\b(add_metric|single_metric)\(", source.read_text(encoding="utf-8"))
    }

    assert writers == {"observability.py"}
    assert emitted_metrics()["TokenRejected"] == {"reason", "service"}
    assert emitted_metrics()["DependencyUnavailable"] == {"service"}


def powertools_environment(template: Template) -> dict[str, str]:
    variables: dict[str, str] = template["Globals"]["Function"]["Environment"]["Variables"]
    return variables


def test_token_rejected_as_powertools_writes_it(
    template: Template, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The EMF record the functions print for one refused token: its namespace and dimension set
    # are what the spike alarm's query selects.
    from card_tokens.observability import count

    environment = powertools_environment(template)
    for name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
        monkeypatch.setenv(name, environment[name])
    capsys.readouterr()

    count("TokenRejected", reason="expired")

    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    query = metrics_insights_query(token_rejected_query(template))
    assert directive["Namespace"] == query["namespace"]
    assert [metric["Name"] for metric in directive["Metrics"]] == [query["metric"]]
    assert [set(dimensions) for dimensions in directive["Dimensions"]] == [query["schema"]]
    assert record["service"] == query["where"]["service"]


# ---------------------------------------------------------------- the new alarms


def alarm(template: Template, alarm_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][alarm_id]["Properties"]
    assert template["Resources"][alarm_id]["Type"] == "AWS::CloudWatch::Alarm"
    return properties


# REST API metrics: the API by name (the stack's, SAM's OpenAPI title) and its stage, as
# ApiServerErrorRateAlarm (tests/template/test_operations.py).
THIS_API = [
    {"Name": "ApiName", "Value": {"Ref": "AWS::StackName"}},
    {"Name": "Stage", "Value": {"Ref": "CardTokensApi.Stage"}},
]


def test_every_api_alarm_watches_this_apis_stage(template: Template) -> None:
    # The HTTP API's metric names (4xx, 5xx) and its ApiId dimension do not exist for a REST API:
    # an alarm on them would stay in INSUFFICIENT_DATA, then OK, whatever the API does.
    api_metrics = [
        metric
        for properties in (
            a["Properties"] for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        )
        for metric in [properties]
        + [q["MetricStat"]["Metric"] for q in properties.get("Metrics", []) if "MetricStat" in q]
        if metric.get("Namespace") == "AWS/ApiGateway"
    ]

    assert {m["MetricName"] for m in api_metrics} == {"4XXError", "5XXError", "Count", "Latency"}
    for metric in api_metrics:
        assert metric["Dimensions"] == THIS_API, metric


def test_latency_alarm_watches_the_apis_p99(template: Template) -> None:
    latency = alarm(template, "ApiLatencyP99Alarm")

    assert (latency["Namespace"], latency["MetricName"]) == ("AWS/ApiGateway", "Latency")
    assert latency["Dimensions"] == THIS_API
    assert latency["ExtendedStatistic"] == "p99"
    assert "Statistic" not in latency
    assert latency["Period"] == 60
    assert (latency["EvaluationPeriods"], latency["DatapointsToAlarm"]) == (5, 3)
    assert latency["Threshold"] == {"Ref": "ApiLatencyP99ThresholdMilliseconds"}
    assert latency["ComparisonOperator"] == "GreaterThanThreshold"
    # A percentile of three requests is noise: such periods leave the state as it was.
    assert latency["EvaluateLowSampleCountPercentile"] == "ignore"


def test_the_4xx_rate_alarm_divides_4xx_by_requests_of_this_api(template: Template) -> None:
    rate = alarm(template, "ApiClientErrorRateAlarm")
    queries = {query["Id"]: query for query in rate["Metrics"]}

    assert rate["Threshold"] == {"Ref": "Api4xxRatePercentThreshold"}
    assert [query["Id"] for query in rate["Metrics"] if query.get("ReturnData")] == ["rate"]
    assert queries["rate"]["Expression"] == "IF(requests >= 20, 100 * errors / requests, 0)"
    for metric_id, name in (("errors", "4XXError"), ("requests", "Count")):
        stat = queries[metric_id]["MetricStat"]
        assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"]) == (
            "AWS/ApiGateway",
            name,
        )
        assert stat["Metric"]["Dimensions"] == THIS_API
        assert (stat["Stat"], stat["Period"]) == ("Sum", 60)


_METRICS_INSIGHTS = re.compile(
    r"SELECT SUM\((?P<metric>\w+)\) FROM SCHEMA\((?P<namespace>\w+), (?P<schema>[\w, ]+)\)"
    r"(?: WHERE (?P<where>.+))?"
)


def metrics_insights_query(expression: str) -> dict[str, Any]:
    """The parts of a `SELECT SUM(m) FROM SCHEMA(ns, d1, d2) WHERE d = 'v' AND ...` query."""
    match = _METRICS_INSIGHTS.fullmatch(" ".join(expression.split()))
    assert match, expression
    where = dict(re.findall(r"(\w+) = '([^']*)'", match["where"] or ""))
    return {
        "metric": match["metric"],
        "namespace": match["namespace"],
        "schema": {key.strip() for key in match["schema"].split(",")},
        "where": where,
    }


def token_rejected_query(template: Template) -> str:
    (query,) = alarm(template, "TokenRejectedSpikeAlarm")["Metrics"]
    expression: str = query["Expression"]
    return expression


def test_token_rejected_spike_sums_every_reason_of_the_metric_the_layer_emits(
    template: Template,
) -> None:
    spike = alarm(template, "TokenRejectedSpikeAlarm")
    (query,) = spike["Metrics"]
    parsed = metrics_insights_query(query["Expression"])
    environment = powertools_environment(template)

    # SCHEMA(namespace, keys) selects the series with exactly these dimension keys: every reason.
    assert parsed["metric"] == "TokenRejected"
    assert parsed["namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert parsed["schema"] == emitted_metrics()["TokenRejected"]
    assert parsed["where"] == {"service": environment["POWERTOOLS_SERVICE_NAME"]}
    # A Metrics Insights alarm query carries its own period and is the value alarmed on.
    assert (query["Period"], query["ReturnData"]) == (60, True)
    assert spike["Threshold"] == {"Ref": "TokenRejectedPerMinuteThreshold"}
    assert (spike["EvaluationPeriods"], spike["DatapointsToAlarm"]) == (5, 3)


# ---------------------------------------------------------------- rotation failures

SIGNING_KEY_SECRET_ARN = (
    "arn:aws:secretsmanager:us-east-1:210987654321:secret:SigningKeySecret-AbCdEf"
)


def rotation_event(
    event_name: str = "RotationFailed",
    secret_arn: str = SIGNING_KEY_SECRET_ARN,
    detail_type: str = "AWS Service Event via CloudTrail",
) -> dict[str, Any]:
    """A Secrets Manager rotation event as EventBridge delivers it (CloudTrail service event)."""
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": detail_type,
        "source": "aws.secretsmanager",
        "account": "210987654321",
        "time": "2026-11-28T10:15:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {
                "accountId": "210987654321",
                "invokedBy": "secretsmanager.amazonaws.com",
            },
            "eventTime": "2026-11-28T10:15:00Z",
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": event_name,
            "awsRegion": "us-east-1",
            "sourceIPAddress": "secretsmanager.amazonaws.com",
            "userAgent": "secretsmanager.amazonaws.com",
            "requestParameters": None,
            "responseElements": None,
            "additionalEventData": {"SecretId": secret_arn},
            "eventID": "0b8a3b3e-3f3a-4b4e-9c1e-5b2f0c6d7e8f",
            "readOnly": False,
            "eventType": "AwsServiceEvent",
            "managementEvent": True,
            "recipientAccountId": "210987654321",
            "eventCategory": "Management",
        },
    }


def rotation_rule(template: Template) -> dict[str, Any]:
    rule = template["Resources"]["SigningKeyRotationFailedRule"]
    assert rule["Type"] == "AWS::Events::Rule"
    assert "Condition" not in rule
    properties: dict[str, Any] = rule["Properties"]
    return properties


def rule_pattern(template: Template) -> Any:
    """The rule's EventPattern as EventBridge evaluates it (moto's matcher)."""
    from moto.events.models import EventPattern

    resolver = Resolver(template, "card-tokens-prod")
    resolver.refs["SigningKeySecret"] = SIGNING_KEY_SECRET_ARN
    return EventPattern.load(json.dumps(resolver.resolve(rotation_rule(template)["EventPattern"])))


def test_the_rule_is_the_documented_rotation_failed_pattern_for_the_signing_key(
    template: Template,
) -> None:
    pattern = rotation_rule(template)["EventPattern"]

    assert rotation_rule(template)["State"] == "ENABLED"
    assert pattern == {
        "source": ["aws.secretsmanager"],
        "detail-type": ["AWS Service Event via CloudTrail", "AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["secretsmanager.amazonaws.com"],
            "eventName": ["RotationFailed"],
            "additionalEventData": {"SecretId": [{"Ref": "SigningKeySecret"}]},
        },
    }


@pytest.mark.parametrize(
    "event",
    [
        rotation_event(),
        rotation_event(detail_type="AWS API Call via CloudTrail"),
    ],
)
def test_the_rule_matches_a_failed_rotation_of_the_signing_key(
    template: Template, event: dict[str, Any]
) -> None:
    assert rule_pattern(template).matches_event(event)


@pytest.mark.parametrize(
    "event",
    [
        rotation_event(event_name="RotationSucceeded"),
        rotation_event(event_name="RotationStarted"),
        rotation_event(
            secret_arn="arn:aws:secretsmanager:us-east-1:210987654321:secret:other-AbCdEf"
        ),
        {**rotation_event(), "source": "aws.kms"},
        {**rotation_event(), "detail-type": "Secret Label Updated"},
    ],
)
def test_the_rule_ignores_other_events(template: Template, event: dict[str, Any]) -> None:
    assert not rule_pattern(template).matches_event(event)


def test_the_rule_tells_the_chosen_topic_which_may_be_told_by_it_only(
    template: Template,
) -> None:
    (target,) = rotation_rule(template)["Targets"]
    statement = topic_policy_statements(template)["TheRotationFailedRulePublishes"]
    paths = target["InputTransformer"]["InputPathsMap"]

    assert target["Arn"] == CHOSEN_TOPIC
    assert "RoleArn" not in target  # SNS targets are authorized by the topic policy
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Resource"] == {"Ref": "AlarmTopic"}
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["SigningKeyRotationFailedRule", "Arn"]}},
    }
    # The message quotes fields the event has.
    event = rotation_event()
    for path in paths.values():
        value: Any = event
        for key in path.removeprefix("$.").split("."):
            value = value[key]
        assert isinstance(value, str), path


# ---------------------------------------------------------------- the dashboard

_SEARCH = re.compile(
    r"SEARCH\('\{(?P<namespace>[^,}]+),(?P<keys>[^}]*)\} MetricName=\"(?P<metric>\w+)\""
    r"(?P<filters>(?: \w+=\"[^\"]*\")*)', '(?P<stat>\w+)', (?P<period>\d+)\)"
)


class _PlaceholderIds(Resolver):
    """Placeholder physical ids ("<Id>", "<Id.Arn>") for the resources a value names, each of
    which must exist under the parameter values (its Condition holds)."""

    def _named(self, logical_id: str) -> None:
        resources = self.template["Resources"]
        assert logical_id in resources, f"${{{logical_id}}} names nothing in the template"
        condition = resources[logical_id].get("Condition")
        assert condition is None or self.condition(condition), f"{logical_id} may not exist"

    def ref(self, name: str) -> str:
        if name in self.template["Resources"]:
            self._named(name)
            return f"<{name}>"
        return super().ref(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        self._named(logical_id)
        return f"<{logical_id}.{attribute}>"


def dashboard_body(template: Template, **parameters: str) -> dict[str, Any]:
    """DashboardBody as CloudFormation hands it to CloudWatch with these parameter values (the
    defaults otherwise), with placeholder physical ids."""
    template = copy.deepcopy(template)
    for name, value in parameters.items():
        template["Parameters"][name]["Default"] = value
    resolver = _PlaceholderIds(template, "card-tokens-prod")
    body = template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]
    parsed: dict[str, Any] = json.loads(resolver.resolve(body))
    return parsed


def dashboard_metrics(template: Template) -> list[dict[str, Any]]:
    """Every metric a graph of the dashboard draws: namespace, name, dimensions, stat."""
    found = []
    for widget in dashboard_body(template)["widgets"]:
        if widget["type"] != "metric":
            continue
        properties = widget["properties"]
        for entry in properties["metrics"]:
            if isinstance(entry[0], dict) and "expression" in entry[0]:
                search = _SEARCH.fullmatch(entry[0]["expression"])
                assert search, entry[0]["expression"]
                found.append(
                    {
                        "namespace": search["namespace"],
                        "name": search["metric"],
                        "keys": {key for key in search["keys"].split(",") if key},
                        "dimensions": dict(re.findall(r'(\w+)="([^"]*)"', search["filters"])),
                        "stat": search["stat"],
                    }
                )
                continue
            options = entry[-1] if isinstance(entry[-1], dict) else {}
            fields = entry[:-1] if options else entry
            assert "." not in fields, f"spell out every metric: {entry}"
            namespace, name, *pairs = fields
            dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
            found.append(
                {
                    "namespace": namespace,
                    "name": name,
                    "keys": set(dimensions),
                    "dimensions": dimensions,
                    "stat": options.get("stat", properties.get("stat")),
                }
            )
    return found


def alarm_service_metrics(template: Template) -> list[dict[str, Any]]:
    """Every CardTokens metric an alarm reads, in the same shape as dashboard_metrics()."""
    namespace = powertools_environment(template)["POWERTOOLS_METRICS_NAMESPACE"]
    found = []
    for properties in (
        a["Properties"] for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
    ):
        metrics = [properties] if "MetricName" in properties else []
        metrics += [
            q["MetricStat"]["Metric"] for q in properties.get("Metrics", []) if "MetricStat" in q
        ]
        for metric in metrics:
            dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            found.append(
                {
                    "namespace": metric["Namespace"],
                    "name": metric["MetricName"],
                    "keys": set(dimensions),
                    "dimensions": dimensions,
                }
            )
        for query in properties.get("Metrics", []):
            if query.get("Expression", "").startswith("SELECT"):
                parsed = metrics_insights_query(query["Expression"])
                found.append(
                    {
                        "namespace": parsed["namespace"],
                        "name": parsed["metric"],
                        "keys": parsed["schema"],
                        "dimensions": parsed["where"],
                    }
                )
    return [metric for metric in found if metric["namespace"] == namespace]


def test_every_service_metric_on_the_dashboard_and_in_alarms_is_one_the_layer_emits(
    template: Template,
) -> None:
    from card_tokens.records import PaymentStatus

    namespace = powertools_environment(template)["POWERTOOLS_METRICS_NAMESPACE"]
    service = powertools_environment(template)["POWERTOOLS_SERVICE_NAME"]
    emitted = emitted_metrics()
    referenced = [
        metric for metric in dashboard_metrics(template) if metric["namespace"] == namespace
    ] + alarm_service_metrics(template)

    assert referenced
    for metric in referenced:
        # The name, and exactly the dimension keys it is emitted with: CloudWatch keeps one
        # series per dimension set, and a graph or alarm on another set stays empty.
        assert metric["name"] in emitted, f"{metric['name']} is not emitted by the layer"
        assert metric["keys"] == emitted[metric["name"]], metric
        assert metric["dimensions"]["service"] == service, metric
        if metric["name"] == "Payments" and "status" in metric["dimensions"]:
            assert metric["dimensions"]["status"] in get_args(PaymentStatus), metric


def test_the_dashboard_shows_every_metric_the_service_emits(template: Template) -> None:
    namespace = powertools_environment(template)["POWERTOOLS_METRICS_NAMESPACE"]
    shown = {m["name"] for m in dashboard_metrics(template) if m["namespace"] == namespace}

    assert shown == set(emitted_metrics())


def test_the_dashboard_shows_the_api_every_function_and_every_table(template: Template) -> None:
    shown = {
        (m["namespace"], m["name"], tuple(sorted(m["dimensions"].items())), m["stat"])
        for m in dashboard_metrics(template)
    }
    functions = [
        function_id
        for function_id, function in resources_of_type(
            template, "AWS::Serverless::Function"
        ).items()
        if "Condition" not in function
    ]
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    # The REST API's stage, as the API alarms name it
    api = (("ApiName", "card-tokens-prod"), ("Stage", "<CardTokensApi.Stage>"))
    # and the web ACL by its metric name: every rule's series (Rule), and ALL
    resolver = _PlaceholderIds(template, "card-tokens-prod")
    web_acl = resources_of_type(template, "AWS::WAFv2::WebACL")["ApiWebAcl"]["Properties"]
    waf = (("WebACL", resolver.resolve(web_acl["VisibilityConfig"]["MetricName"])),)

    # namespace, the dimensions of each resource shown, and "metric/statistic" of each
    expected_series = [
        ("AWS/ApiGateway", [api], "Count/Sum 4XXError/Sum 5XXError/Sum Latency/p50 Latency/p99"),
        ("AWS/WAFV2", [waf], "BlockedRequests/Sum CountedRequests/Sum"),
        (
            "AWS/Lambda",
            [(("FunctionName", f"<{function_id}>"),) for function_id in functions],
            "Errors/Sum Throttles/Sum Duration/p99 ConcurrentExecutions/Maximum",
        ),
        (
            "AWS/DynamoDB",
            [(("TableName", f"<{table_id}>"),) for table_id in tables],
            "ReadThrottleEvents/Sum WriteThrottleEvents/Sum",
        ),
    ]
    expected = {
        (namespace, metric, dimensions, statistic)
        for namespace, each_resource, metrics in expected_series
        for dimensions in each_resource
        for metric, statistic in (pair.split("/") for pair in metrics.split())
    }
    assert expected <= shown, expected - shown


@pytest.mark.parametrize("page", ["disabled", "enabled"])
def test_the_dashboard_lists_every_alarm_and_its_url_is_an_output(
    template: Template, page: str
) -> None:
    # The checkout page's rollback alarms exist with the page only, and are listed then.
    (alarm_widget,) = [
        w for w in dashboard_body(template, CheckoutPage=page)["widgets"] if w["type"] == "alarm"
    ]
    dashboard = template["Resources"]["OperationsDashboard"]["Properties"]
    url = template["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    resolver = resolver_with(template, CheckoutPage=page)
    existing = {
        alarm_id
        for alarm_id, alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").items()
        if "Condition" not in alarm or resolver.condition(alarm["Condition"])
    }

    listed = alarm_widget["properties"]["alarms"]
    assert len(listed) == len(set(listed))
    assert set(listed) == {f"<{alarm_id}.Arn>" for alarm_id in existing}
    assert any("CheckoutPage" in alarm_id for alarm_id in existing) is (page == "enabled")
    # Dashboards are per account, not per region.
    assert dashboard["DashboardName"] == {"Fn::Sub": "${AWS::StackName}-${AWS::Region}"}
    assert url == (
        "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}"
        "#dashboards/dashboard/${OperationsDashboard}"
    )
    assert template["Outputs"]["AlarmNotificationTopicArn"]["Value"] == CHOSEN_TOPIC


def test_the_waf_graphs_select_every_rule_of_the_stacks_web_acl(template: Template) -> None:
    # AWS WAF writes a regional web ACL's rule metrics with exactly the dimensions Region, Rule
    # (the rule's metric name, or ALL) and WebACL (the web ACL's metric name).
    resolver = _PlaceholderIds(template, "card-tokens-prod")
    web_acl = template["Resources"]["ApiWebAcl"]["Properties"]
    waf_metrics = [m for m in dashboard_metrics(template) if m["namespace"] == "AWS/WAFV2"]

    assert {m["name"] for m in waf_metrics} == {"BlockedRequests", "CountedRequests"}
    for metric in waf_metrics:
        assert metric["keys"] == {"Region", "Rule", "WebACL"}, metric
        assert metric["dimensions"] == {
            "WebACL": resolver.resolve(web_acl["VisibilityConfig"]["MetricName"])
        }, metric
    # and every rule writes its metrics (a rule with them off would be missing from the graphs)
    rules = [r for r in web_acl["Rules"] if "Fn::If" not in r] + [
        r["Fn::If"][1] for r in web_acl["Rules"] if "Fn::If" in r
    ]
    assert rules
    for rule in rules:
        assert rule["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True, rule["Name"]
