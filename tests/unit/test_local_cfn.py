"""The local stack builds what a deploy with the parameters' defaults builds."""

from __future__ import annotations

from local.cfn import load_deployed_template, load_template


def test_a_default_deploy_leaves_out_the_resources_whose_condition_is_false() -> None:
    everything = load_template()["Resources"]
    deployed = load_deployed_template()["Resources"]

    # CheckoutPage defaults to disabled, AlarmTopicArn to empty: the only alarms left are the
    # ones CodeDeploy rolls a deploy back on, which exist without a topic (docs/rollout.md).
    assert "CheckoutPageFunction" in everything
    assert "CheckoutPageFunction" not in deployed
    rollback_alarms = {
        alarm["Ref"]
        for resource in deployed.values()
        for alarm in resource.get("Properties", {})
        .get("DeploymentPreference", {})
        .get("Alarms", [])
    }
    assert rollback_alarms
    assert {k for k, r in deployed.items() if r["Type"] == "AWS::CloudWatch::Alarm"} == (
        rollback_alarms
    )
    # Everything unconditional stays.
    assert {k for k, r in everything.items() if "Condition" not in r} == set(deployed)
