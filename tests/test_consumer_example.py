"""The example consumer program reads the platform's outputs through a StackReference (mock runtime)."""

from __future__ import annotations

from tools.plan import REPO, run_program

PLATFORM = "acme/mlplatform/prod"
PLATFORM_OUTPUTS = {
    "endpointName": "mlplatform-prod",
    "region": "eu-west-1",
    "invokePolicyArn": "arn:aws:iam::111122223333:policy/mlplatform-prod-invoke",
}


def test_consumer_attaches_the_platform_invoke_policy_and_exports_the_endpoint() -> None:
    plan = run_program(
        "app",
        {"consumer:platformStack": PLATFORM, "aws:region": "eu-west-1"},
        program=REPO / "examples" / "consumer" / "__main__.py",
        stack_outputs={PLATFORM: PLATFORM_OUTPUTS},
    )
    ref = plan.one("pulumi:pulumi:StackReference")
    assert ref["inputs"]["name"] == PLATFORM
    attachment = plan.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment["inputs"]["policyArn"] == PLATFORM_OUTPUTS["invokePolicyArn"]
    assert plan.outputs["endpointName"] == "mlplatform-prod"
    assert plan.outputs["region"] == "eu-west-1"
