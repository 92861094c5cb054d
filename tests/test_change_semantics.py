"""The change table and the plan diff: what each change to a resource means in AWS, on known cases."""

from __future__ import annotations

from typing import Any

from tools.change_semantics import ENDPOINT, ENDPOINT_CONFIG, MODEL, Effect, effect_of
from tools.diff import diff_plans, render_markdown


def test_any_change_to_an_endpoint_config_is_a_replacement() -> None:
    assert effect_of(ENDPOINT_CONFIG, ["productionVariants[0].initialInstanceCount"]) is Effect.REPLACEMENT
    assert effect_of(ENDPOINT_CONFIG, ["dataCaptureConfig.initialSamplingPercentage"]) is Effect.REPLACEMENT


def test_a_new_endpoint_config_on_an_endpoint_is_a_blue_green_rollout() -> None:
    assert effect_of(ENDPOINT, ["endpointConfigName"]) is Effect.BLUE_GREEN
    assert effect_of(ENDPOINT, [], dependency_replaced=True) is Effect.BLUE_GREEN


def test_changing_rollback_alarms_replaces_the_endpoint() -> None:
    path = "deploymentConfig.autoRollbackConfiguration.alarms[0].alarmName"
    assert effect_of(ENDPOINT, [path]) is Effect.REPLACEMENT


def test_changing_traffic_routing_is_a_blue_green_rollout() -> None:
    """The provider sends UpdateEndpoint with the DeploymentConfig whenever `deployment_config` changes
    (terraform-provider-aws internal/service/sagemaker/endpoint.go, resourceEndpointUpdate): a new fleet."""
    path = "deploymentConfig.blueGreenUpdatePolicy.trafficRoutingConfiguration.waitIntervalInSeconds"
    assert effect_of(ENDPOINT, [path]) is Effect.BLUE_GREEN
    assert effect_of(ENDPOINT, ["deploymentConfig.blueGreenUpdatePolicy.terminationWaitInSeconds"]) is Effect.BLUE_GREEN


def test_tag_changes_never_replace() -> None:
    assert effect_of(MODEL, ["tags.owner"]) is Effect.IN_PLACE


def test_training_job_changes_start_a_new_job() -> None:
    assert effect_of("aws:sagemaker/trainingJob:TrainingJob", ["hyperParameters.epochs"]) is Effect.NEW_JOB


def _res(type_: str, name: str, inputs: dict[str, Any], deps: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": type_,
        "name": name,
        "parent": None,
        "custom": True,
        "inputs": inputs,
        "options": {"dependsOn": deps or []},
    }


def _plan(image: str, count: int, canary: int, bake: int) -> dict[str, Any]:
    model = _res(
        MODEL,
        "m",
        {
            "primaryContainer": {
                "image": image,
                "modelDataSource": {"s3DataSources": [{"s3Uri": "s3://models/job-1/output/model/"}]},
            }
        },
    )
    config = _res(
        ENDPOINT_CONFIG,
        "c",
        {
            "productionVariants": [
                {
                    "variantName": "primary",
                    "modelName": "m-1",
                    "instanceType": "ml.c6i.xlarge",
                    "initialInstanceCount": count,
                }
            ]
        },
        [f"{MODEL}::m"],
    )
    endpoint = _res(
        ENDPOINT,
        "e",
        {
            "name": "mlplatform-prod",
            "endpointConfigName": "c-1",
            "deploymentConfig": {
                "blueGreenUpdatePolicy": {
                    "trafficRoutingConfiguration": {
                        "type": "CANARY",
                        "canarySize": {"type": "CAPACITY_PERCENT", "value": canary},
                        "waitIntervalInSeconds": bake,
                    },
                    "terminationWaitInSeconds": 300,
                    "maximumExecutionTimeoutInSeconds": 3600,
                },
                "autoRollbackConfiguration": {"alarms": [{"alarmName": "mlplatform-prod-rollback-5xx"}]},
            },
        },
        [f"{ENDPOINT_CONFIG}::c"],
    )
    return {"stack": "prod", "resources": [model, config, endpoint], "outputs": {}}


def test_new_image_propagates_to_a_rollout_with_routing_and_duration() -> None:
    diff = diff_plans("prod", _plan("repo@sha256:aaa", 4, 25, 600), _plan("repo@sha256:bbb", 4, 10, 900))
    effects = {c.ref: c.effect for c in diff.changed}
    assert effects[f"{MODEL}::m"] is Effect.REPLACEMENT
    assert effects[f"{ENDPOINT_CONFIG}::c"] is Effect.REPLACEMENT
    assert effects[f"{ENDPOINT}::e"] is Effect.BLUE_GREEN
    rollout = diff.rollouts[0]
    assert rollout.before["image"] == "repo@sha256:aaa"
    assert rollout.after["image"] == "repo@sha256:bbb"
    assert rollout.routing.startswith("canary 10% -> bake 15 min -> 100%")
    assert rollout.longest_minutes == 10 + 2 * 15 + 5
    text = render_markdown([diff], "main")
    assert "**blue/green rollout**" in text
    assert "canary 10% -> bake 15 min" in text
    assert "`mlplatform-prod-rollback-5xx`" in text


def test_rollout_settings_only_change_reads_as_a_new_fleet_of_the_same_model_with_its_start_count() -> None:
    """Canary 25 -> 32 and nothing else: a blue/green rollout with its plan, the same model, and the count the new
    fleet starts with (tests/lifecycle.py P1, S1)."""
    diff = diff_plans("prod", _plan("repo@sha256:aaa", 10, 25, 600), _plan("repo@sha256:aaa", 10, 32, 600))
    assert [(c.ref, c.effect) for c in diff.changed] == [(f"{ENDPOINT}::e", Effect.BLUE_GREEN)]
    rollout = diff.rollouts[0]
    assert rollout.same_model
    assert rollout.routing.startswith("canary 32% -> bake 10 min")
    text = render_markdown([diff], "main")
    assert "starting with 10 instances" in text
    assert "same model and image: only the rollout settings changed" in text


def test_identical_plans_have_no_changes() -> None:
    plan = _plan("repo@sha256:aaa", 4, 25, 600)
    diff = diff_plans("prod", plan, plan)
    assert (diff.added, diff.removed, diff.changed) == ([], [], [])
    assert "No changes." in render_markdown([diff], "main")
