"""Alerts that reach someone: the alarm topic, placeholder refusal, the alarms and the dashboard.

Every alarm exists in every stack and notifies the chosen topic: the stack's own encrypted
AlarmTopic, or the existing topic AlarmTopicArn names. Placeholder values (AWS documentation
account ids, reserved example e-mail domains) are refused by the parameters themselves.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local.cfn import resources_of_type
from local.intrinsics import Resolver

pytestmark = pytest.mark.template

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


def test_no_alarm_depends_on_a_topic_condition(template: Template) -> None:
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")

    assert alarms
    for alarm_id, alarm in alarms.items():
        assert "Condition" not in alarm, alarm_id
        assert alarm["Properties"]["AlarmActions"] == [CHOSEN_TOPIC], alarm_id
        assert alarm["Properties"]["OKActions"] == [CHOSEN_TOPIC], alarm_id
