"""The local stack builds what a deploy with the parameters' defaults builds."""

from __future__ import annotations

from local.cfn import load_deployed_template, load_template


def test_a_default_deploy_leaves_out_the_resources_whose_condition_is_false() -> None:
    everything = load_template()["Resources"]
    deployed = load_deployed_template()["Resources"]

    # CheckoutPage defaults to disabled; AlarmTopicArn to empty, so the stack has its own topic
    # (without a subscription: AlarmEmail is empty too), and the alarms exist either way,
    # among them the ones CodeDeploy rolls a deploy back on (docs/rollout.md).
    assert "CheckoutPageFunction" in everything
    assert "CheckoutPageFunction" not in deployed
    own_topic = {"AlarmTopic", "AlarmTopicKey", "AlarmTopicPolicy"}
    assert "AlarmEmailSubscription" not in deployed
    rollback_alarms = {
        alarm["Ref"]
        for resource in deployed.values()
        for alarm in resource.get("Properties", {})
        .get("DeploymentPreference", {})
        .get("Alarms", [])
    }
    assert rollback_alarms
    assert rollback_alarms <= {
        k for k, r in deployed.items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    # Everything unconditional stays, and so do the stack's own alarm topic and the account's
    # API Gateway logging role (ApiGatewayLogsRole defaults to create).
    unconditional = {k for k, r in everything.items() if "Condition" not in r}
    logging_role = {"ApiGatewayCloudWatchRole", "ApiGatewayAccount"}
    assert unconditional | own_topic | logging_role == set(deployed)
