"""Lifecycle scenarios (issue 15): the stack deployed again and again; after each step, what AWS would hold.

The harness and the table of modelled AWS and provider behaviours (ids P1..B1 below) are in tests/lifecycle.py.
"""

from __future__ import annotations

import pytest

from components import outputs
from tests.lifecycle import Aws, DeploymentFailed, Rollout, Stack, publish_dev_version

pytestmark = pytest.mark.slow


def prod_stack(aws: Aws, version: int = 1) -> Stack:
    """Prod as committed (canary 25%, 4 instances, autoscaling 4..12), promoting dev's version `version`."""
    stack = Stack.committed("prod", aws)
    stack.source_outputs = publish_dev_version(aws, version)
    return stack


def test_autoscaled_rollout_starts_the_new_fleet_at_the_live_desired_count() -> None:
    """Deploy A, autoscaling to 10, deploy B: the green fleet starts at 10, not the configured 4 (P1, S1, A1).

    Then nothing changes and autoscaling moves to 7: `up` is a no-op (no new config, no UpdateEndpoint), so
    autoscaling's moves never start a rollout by themselves.
    """
    aws = Aws()
    prod = prod_stack(aws, 1)
    prod.up()
    assert prod.live.desired_count == 4
    first_config = prod.live.config_name

    assert aws.autoscale(prod.endpoint_name, to=10) == 10
    prod.source_outputs = publish_dev_version(aws, 2)
    deployment = prod.up()

    assert deployment.updated_endpoint
    assert prod.live.config_name != first_config
    assert aws.configs[prod.live.config_name]["count"] == 10
    assert prod.live.desired_count == 10
    # What the provider sent: no RetainAllVariantProperties, so the count came from the config (P1, S1).
    assert "RetainAllVariantProperties" not in aws.update_calls[-1]
    assert prod.outputs[outputs.ENDPOINT_ROLLOUT_START_COUNT] == 10

    calls = len(aws.update_calls)
    aws.autoscale(prod.endpoint_name, to=7)
    again = prod.up()
    assert not again.updated_endpoint
    assert len(aws.update_calls) == calls
    assert prod.live.desired_count == 7


def test_rollout_start_count_stays_within_the_autoscaling_maximum() -> None:
    """Autoscaling at 12 (the maximum), then the maximum lowered to 8 with a new model: the fleet starts at 8 and
    the target's new range holds it there (A1)."""
    aws = Aws()
    prod = prod_stack(aws, 1)
    prod.up()
    aws.autoscale(prod.endpoint_name, to=12)
    prod.set(autoscalingMaxCapacity=8)
    prod.source_outputs = publish_dev_version(aws, 2)
    prod.up()
    assert aws.configs[prod.live.config_name]["count"] == 8
    assert prod.live.desired_count == 8


def test_rollback_by_alarm_leaves_both_model_versions_readable_by_the_endpoint_role() -> None:
    """v1 live at 10 instances, v2 rolled out and rolled back by an alarm (S2): the fleet SageMaker keeps (v1)
    must still start instances, for a scale-out or a replacement, with the one endpoint role (S3); so must v2's,
    which the next `up` rolls out again (and lands).

    Before the fix the role policy was rewritten to v2's prefix only, and v1's fleet got AccessDenied."""
    aws = Aws()
    prod = prod_stack(aws, 1)
    prod.up()
    v1_config = prod.live.config_name
    aws.autoscale(prod.endpoint_name, to=10)

    prod.source_outputs = publish_dev_version(aws, 2)
    aws.next_rollout = Rollout.ROLLS_BACK_SILENTLY
    with pytest.raises(DeploymentFailed, match="rolled endpoint mlplatform-prod back"):
        prod.up()  # the provider reports success; the after-update hook sees the old config (P2)

    assert prod.live.config_name == v1_config
    assert prod.live.desired_count == 10
    v2_config = aws.update_calls[-1]["EndpointConfigName"]
    assert aws.models[aws.configs[v1_config]["model"]]["data"].endswith("mlplatform-dev-train-v1/output/model/")
    assert aws.fleet_problems(v1_config) == []
    assert aws.fleet_problems(v2_config) == []

    # The next `up` (deployments refresh, P3) rolls v2 out again, at the live 10, and this time it lands.
    again = prod.up(refresh=True)
    assert again.updated_endpoint
    assert (prod.live.config_name, prod.live.desired_count) == (v2_config, 10)


def test_rollback_reported_as_an_error_is_caught_by_verify_and_rolled_out_again_by_up_with_refresh() -> None:
    """SageMaker passes through RollingBack: the provider errors, state records the new config (P2, P4). A plain
    `up` then changes nothing and `tools.verify` fails; `up --refresh` reads the served config back (P3) and
    rolls the new model out again, at the live count."""
    from tools.verify import VerificationFailed, verify_endpoint

    aws = Aws()
    prod = prod_stack(aws, 1)
    prod.up()
    v1_config = prod.live.config_name
    aws.autoscale(prod.endpoint_name, to=9)
    prod.source_outputs = publish_dev_version(aws, 2)
    aws.next_rollout = Rollout.ROLLS_BACK_VIA_ROLLING_BACK
    with pytest.raises(DeploymentFailed, match="unexpected state 'RollingBack'"):
        prod.up()
    assert prod.live.config_name == v1_config
    calls = len(aws.update_calls)

    plain = prod.up()
    assert not plain.updated_endpoint
    assert len(aws.update_calls) == calls
    assert prod.live.config_name == v1_config
    with pytest.raises(VerificationFailed, match="rolled endpoint mlplatform-prod back"):
        verify_endpoint(aws, prod.endpoint_name, prod.outputs[outputs.ENDPOINT_CONFIG_NAME], timeout_seconds=0)

    refreshed = prod.up(refresh=True)
    assert refreshed.updated_endpoint
    assert prod.live.config_name == prod.outputs[outputs.ENDPOINT_CONFIG_NAME] != v1_config
    assert prod.live.desired_count == 9
    verify_endpoint(aws, prod.endpoint_name, prod.outputs[outputs.ENDPOINT_CONFIG_NAME], timeout_seconds=0)


def test_deploy_workflow_refreshes_before_every_up() -> None:
    """Each deploy job runs `pulumi refresh` before its preview and `up`, so a rollback the provider recorded as
    the new config (P4) is rolled out again by the next deployment (the `up` runs the saved plan of a preview
    taken after the refresh)."""
    from pathlib import Path

    import yaml

    workflow = yaml.safe_load((Path(__file__).parent.parent / ".github/workflows/deploy.yml").read_text())
    for job in workflow["jobs"].values():
        runs = [str(step.get("run", "")) for step in job["steps"]]
        refresh = next(i for i, r in enumerate(runs) if r.startswith("pulumi refresh"))
        up = next(i for i, r in enumerate(runs) if r.startswith("pulumi up"))
        assert refresh < up


def test_rollout_settings_only_change_is_a_blue_green_update_starting_at_the_live_count() -> None:
    """Canary 25 -> 32 alone: the provider sends UpdateEndpoint with the new DeploymentConfig (P1), so SageMaker
    brings up a new fleet of the same model. With autoscaling at 10 the config is recreated at 10; with the live
    count unchanged the same config is sent again, its count being the live one."""
    aws = Aws()
    prod = prod_stack(aws, 1)
    prod.up()
    model = aws.configs[prod.live.config_name]["model"]

    prod.set(rolloutCanaryPercent=32)
    same_count = prod.up()
    assert same_count.updated_endpoint
    call = aws.update_calls[-1]
    assert call["EndpointConfigName"] == prod.live.config_name
    assert call["DeploymentConfig"]["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]["canarySize"]["value"] == 32
    assert prod.live.desired_count == 4

    aws.autoscale(prod.endpoint_name, to=10)
    prod.set(rolloutCanaryPercent=20)
    prod.up()
    assert aws.configs[prod.live.config_name]["model"] == model
    assert aws.configs[prod.live.config_name]["count"] == 10
    assert prod.live.desired_count == 10


def test_instance_type_change_under_autoscaling_takes_two_deployments_and_keeps_the_capacity() -> None:
    """At 10 instances: a direct type change is refused by the program (A3 would fail it mid-update); step 1 turns
    autoscaling off (target deregistered, capacity stays, A2, no rollout); step 2 changes the type and turns
    autoscaling on: the new fleet of the new type starts at the live 10."""
    aws = Aws()
    prod = prod_stack(aws, 1)
    prod.up()
    aws.autoscale(prod.endpoint_name, to=10)
    calls = len(aws.update_calls)

    prod.set(endpointInstanceType="ml.c6i.2xlarge")
    with pytest.raises(DeploymentFailed, match="two deployments"):
        prod.up()
    assert len(aws.update_calls) == calls

    prod.set(endpointInstanceType="ml.c6i.xlarge", autoscalingEnabled=False)
    step1 = prod.up()
    assert not step1.updated_endpoint
    assert aws.targets == {}
    assert prod.live.desired_count == 10

    prod.set(endpointInstanceType="ml.c6i.2xlarge", autoscalingEnabled=True)
    step2 = prod.up()
    assert step2.updated_endpoint
    config = aws.configs[prod.live.config_name]
    assert (config["instance_type"], config["count"]) == ("ml.c6i.2xlarge", 10)
    assert aws.targets == {"endpoint/mlplatform-prod/variant/primary": (4, 12)}
    assert prod.live.desired_count == 10


def test_promoting_an_older_model_rolls_forward_to_a_new_model_of_its_files() -> None:
    """v1, then v2, then v1 promoted again: Pulumi creates a new Model and config (the retained v1 ones keep their
    names, S4), the endpoint rolls forward to them, and both the files it serves and v2's (the fallback) are
    readable."""
    aws = Aws()
    prod = prod_stack(aws, 1)
    prod.up()
    v1_model = aws.configs[prod.live.config_name]["model"]
    prod.source_outputs = publish_dev_version(aws, 2)
    prod.up()
    v2_config = prod.live.config_name

    prod.source_outputs = publish_dev_version(aws, 1)
    prod.up()
    model = aws.configs[prod.live.config_name]["model"]
    assert model != v1_model
    assert aws.models[model]["data"] == aws.models[v1_model]["data"]
    assert len(aws.models) == 3  # every version retained
    assert aws.fleet_problems(prod.live.config_name) == []
    assert aws.fleet_problems(v2_config) == []


DEV_BUCKET = "mlplatform-dev-models-0a1b2c3"
DEV_REPOSITORY = "mlplatform-dev-serving"


def test_dev_bucket_destroyed_while_prod_serves_leaves_every_prod_fleet_its_model_files() -> None:
    """v1 then v2 promoted, then dev's bucket force-destroyed (B1): the live fleet and the retained v1 fleet (a
    rollback target) still find their files, in prod's own bucket (B2), and prod can roll out again."""
    aws = Aws()
    prod = prod_stack(aws, 1)
    prod.up()
    v1_config = prod.live.config_name
    prod.source_outputs = publish_dev_version(aws, 2)
    prod.up()

    aws.destroy_bucket(DEV_BUCKET)
    for config in (prod.live.config_name, v1_config):
        problems = aws.fleet_problems(config)
        assert [p for p in problems if "model files" in p] == []
        assert aws.models[aws.configs[config]["model"]]["data"].startswith("s3://mlplatform-prod-models-")
    prod.set(rolloutCanaryPercent=30)
    assert prod.up().updated_endpoint


def test_twenty_dev_builds_while_prod_serves_leave_prods_image_in_place() -> None:
    """Dev's repository keeps its newest 20 images (E1): after 20 more dev builds dev's copy of v1 is expired, and
    prod's fleets still pull v1 from prod's own repository (R1), same digest."""
    aws = Aws()
    aws.keep_last[DEV_REPOSITORY] = 20
    prod = prod_stack(aws, 1)
    prod.up()
    v1_image = prod.source_outputs[outputs.SERVING_IMAGE]
    for n in range(2, 22):
        publish_dev_version(aws, n)
    assert v1_image.partition("@")[2] not in aws.images[DEV_REPOSITORY]
    served = aws.models[aws.configs[prod.live.config_name]["model"]]["image"]
    assert (
        served
        == f"111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-prod-serving-promoted@{v1_image.partition('@')[2]}"
    )
    assert aws.fleet_problems(prod.live.config_name) == []


def test_dev_destroyed_while_prod_serves_leaves_prod_able_to_start_instances() -> None:
    """Dev torn down (bucket force-destroyed, repository deleted): prod still starts instances of what it serves,
    and of the version it would roll back to."""
    aws = Aws()
    prod = prod_stack(aws, 1)
    prod.up()
    v1_config = prod.live.config_name
    prod.source_outputs = publish_dev_version(aws, 2)
    prod.up()
    aws.destroy_bucket(DEV_BUCKET)
    aws.delete_repository(DEV_REPOSITORY)
    assert aws.fleet_problems(prod.live.config_name) == []
    assert aws.fleet_problems(v1_config) == []
