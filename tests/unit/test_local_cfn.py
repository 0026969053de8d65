"""The local stack builds what a deploy with the parameters' defaults builds."""

from __future__ import annotations

from local.cfn import load_deployed_template, load_template


def test_a_default_deploy_leaves_out_the_resources_whose_condition_is_false() -> None:
    everything = load_template()["Resources"]
    deployed = load_deployed_template()["Resources"]

    # CheckoutPage defaults to disabled, AlarmTopicArn to empty.
    assert "CheckoutPageFunction" in everything
    assert "CheckoutPageFunction" not in deployed
    assert not [r for r in deployed.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    # Everything unconditional stays, and so does the account's API Gateway logging role
    # (ApiGatewayLogsRole defaults to create).
    unconditional = {k for k, r in everything.items() if "Condition" not in r}
    assert unconditional | {"ApiGatewayCloudWatchRole", "ApiGatewayAccount"} == set(deployed)
