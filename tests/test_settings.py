"""Stack settings: parsing, defaults, and a clear message naming the key for every kind of bad config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from components.settings import (
    SettingsError,
    StackSettings,
    has_local_nvme,
    is_gpu_instance,
    load_settings,
)

BASE = {"aws:region": "us-east-1", "mlplatform:owner": "ml-team", "mlplatform:environment": "dev"}


def settings_with(**changes: str) -> StackSettings:
    raw = dict(BASE)
    raw.update({f"mlplatform:{k}": v for k, v in changes.items()})
    return load_settings(raw, "test")


def error_of(raw: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(raw, "test")
    return str(info.value)


def test_minimal_config_gets_documented_defaults() -> None:
    s = settings_with()
    assert s.project.owner == "ml-team"
    assert s.project.region == "us-east-1"
    assert s.storage.capture_retention_days == 30
    assert s.rollout.style == "ALL_AT_ONCE"
    assert s.endpoint.instance_count == 1
    assert s.training.spot is True
    assert s.monitoring.backend == "pipeline"


def test_values_arrive_as_strings_and_are_typed() -> None:
    s = settings_with(
        endpointInstanceCount="3",
        storageForceDestroy="true",
        alarmsEmails='["a@example.com"]',
        trainingHyperparameters='{"epochs": "5"}',
    )
    assert s.endpoint.instance_count == 3
    assert s.storage.force_destroy is True
    assert s.alarms.emails == ["a@example.com"]
    assert s.training.hyperparameters == {"epochs": "5"}


def test_settings_are_frozen() -> None:
    s = settings_with()
    with pytest.raises(ValidationError):
        s.endpoint.instance_count = 5  # type: ignore[misc]


def test_unknown_key_is_rejected_with_a_suggestion() -> None:
    message = error_of({**BASE, "mlplatform:endpointInstanceCont": "2"})
    assert "mlplatform:endpointInstanceCont: unknown key" in message
    assert "did you mean mlplatform:endpointInstanceCount" in message


def test_wrong_type_names_key_and_value() -> None:
    message = error_of({**BASE, "mlplatform:endpointInstanceCount": "two"})
    assert "mlplatform:endpointInstanceCount: got 'two'" in message
    assert "valid integer" in message


def test_out_of_range_number_names_key_and_bound() -> None:
    message = error_of({**BASE, "mlplatform:captureSamplingPercent": "150"})
    assert "mlplatform:captureSamplingPercent: got '150'" in message
    assert "less than or equal to 100" in message


def test_bad_enum_value_lists_allowed_values() -> None:
    message = error_of({**BASE, "mlplatform:rolloutStyle": "BLUE_GREEN"})
    assert "mlplatform:rolloutStyle: got 'BLUE_GREEN'" in message
    assert "'ALL_AT_ONCE', 'CANARY' or 'LINEAR'" in message


def test_missing_required_key_is_named() -> None:
    raw = {k: v for k, v in BASE.items() if k != "mlplatform:owner"}
    assert "mlplatform:owner: required but not set" in error_of(raw)


def test_missing_region_names_the_aws_key() -> None:
    raw = {k: v for k, v in BASE.items() if k != "aws:region"}
    assert "aws:region: required but not set" in error_of(raw)


def test_every_problem_is_reported_at_once() -> None:
    message = error_of({**BASE, "mlplatform:rolloutStyle": "X", "mlplatform:captureSamplingPercent": "0"})
    assert "mlplatform:rolloutStyle" in message
    assert "mlplatform:captureSamplingPercent" in message


def test_malformed_json_list_is_rejected() -> None:
    message = error_of({**BASE, "mlplatform:alarmsEmails": "[oops"})
    assert "mlplatform:alarmsEmails: got '[oops'" in message


def test_bad_email_in_list_names_the_index() -> None:
    assert "mlplatform:alarmsEmails[1]" in error_of({**BASE, "mlplatform:alarmsEmails": '["a@b.co", "nope"]'})


def test_bad_instance_type_is_rejected() -> None:
    message = error_of({**BASE, "mlplatform:endpointInstanceType": "c6i.large"})
    assert "SageMaker instance type" in message and "'c6i.large'" in message


def test_alarm_period_must_be_cloudwatch_period() -> None:
    assert "allowed are 10, 30 or a multiple of 60" in error_of({**BASE, "mlplatform:alarmsPeriodSeconds": "45"})


def test_spot_needs_wait_longer_than_runtime() -> None:
    message = error_of(
        {**BASE, "mlplatform:trainingMaxRuntimeSeconds": "3600", "mlplatform:trainingMaxWaitSeconds": "3600"}
    )
    assert "mlplatform:trainingMaxWaitSeconds (3600) greater than mlplatform:trainingMaxRuntimeSeconds" in message


def test_prod_must_protect_stateful_resources() -> None:
    assert "mlplatform:protect must be true" in error_of({**BASE, "mlplatform:environment": "prod"})


def test_prebuilt_images_must_be_digests() -> None:
    message = error_of({**BASE, "mlplatform:imagesBuild": "false", "mlplatform:imagesTraining": "repo:latest"})
    assert "by digest" in message and "'repo:latest'" in message


def test_pinned_model_source_lists_what_is_missing() -> None:
    message = error_of({**BASE, "mlplatform:modelSource": "pinned"})
    assert "mlplatform:modelDataUri" in message and "mlplatform:modelServingImage" in message


def test_stack_model_source_needs_a_stack_name() -> None:
    assert "mlplatform:modelStack" in error_of({**BASE, "mlplatform:modelSource": "stack"})


def test_autoscaling_bounds_must_hold_the_instance_count() -> None:
    message = error_of(
        {
            **BASE,
            "mlplatform:autoscalingEnabled": "true",
            "mlplatform:autoscalingMinCapacity": "2",
            "mlplatform:autoscalingMaxCapacity": "4",
        }
    )
    assert "mlplatform:endpointInstanceCount (1) must lie between" in message


@pytest.mark.parametrize(
    ("instance_type", "nvme"),
    [
        ("ml.g5.xlarge", True),
        ("ml.g4dn.xlarge", True),
        ("ml.p4d.24xlarge", True),
        ("ml.c5d.large", True),
        ("ml.m5.large", False),
        ("ml.c6i.large", False),
        ("ml.p3.2xlarge", False),
        ("ml.inf2.xlarge", True),
    ],
)
def test_local_nvme_families(instance_type: str, nvme: bool) -> None:
    assert has_local_nvme(instance_type) is nvme


def test_gpu_families() -> None:
    assert is_gpu_instance("ml.g5.2xlarge")
    assert is_gpu_instance("ml.p4d.24xlarge")
    assert not is_gpu_instance("ml.c6i.large")


# Values each key is tried with: at least one of them is invalid for every key that can be invalid.
_BAD_VALUES = ("ml.zz9.bogus", "-5", "99999999", "maybe", "not a valid value!", '{"a": 1}', "[1, 2]", "x" * 300)


def test_every_settings_error_names_the_full_key() -> None:
    """Each key, given values it must refuse, yields a message naming `mlplatform:<key>` (or `aws:region`)."""
    from components.settings import all_keys

    messages: dict[str, str] = {}
    for key in all_keys():
        for bad in _BAD_VALUES:
            try:
                load_settings({**BASE, f"mlplatform:{key}": bad}, "test")
            except SettingsError as exc:
                messages[key] = str(exc)
                break
    assert [k for k, message in messages.items() if f"mlplatform:{k}" not in message] == []
    refused_keys = len(messages)
    assert refused_keys >= len(all_keys()) - 3  # owner-like free-text keys accept most strings
    assert "aws:region" in error_of({**BASE, "aws:region": "mars-1"})


def test_a_bad_instance_type_names_its_key() -> None:
    message = error_of({**BASE, "mlplatform:trainingInstanceType": "ml.zz9.bogus"})
    assert "mlplatform:trainingInstanceType: must be a SageMaker instance type" in message
    message = error_of({**BASE, "mlplatform:policyAllowedGpuInstanceTypes": '["ml.g5.xlarge", "gpu"]'})
    assert "mlplatform:policyAllowedGpuInstanceTypes[1]" in message


def test_an_empty_string_is_the_pulumi_yaml_spelling_of_unset() -> None:
    s = settings_with(imagesTraining="", modelStack="", kubernetesKubeconfig="")
    assert s.images.training is None
    assert s.model.stack is None
    assert s.kubernetes.kubeconfig is None


def test_hyperparameter_numbers_from_a_yaml_map_become_strings() -> None:
    s = settings_with(trainingHyperparameters='{"epochs": 5, "lr": 0.01, "shuffle": true, "target": "label"}')
    assert s.training.hyperparameters == {"epochs": "5", "lr": "0.01", "shuffle": "true", "target": "label"}


def test_a_plaintext_kubeconfig_is_refused_when_the_engine_says_which_keys_are_secret() -> None:
    """Pulumi passes the secret keys beside the config (pulumi-language-python-exec: set_all_config(config,
    secret_keys)); a key holding credentials must be one of them. The value is never echoed."""
    raw = {**BASE, "mlplatform:kubernetesKubeconfig": "token: s3cr3t"}
    with pytest.raises(SettingsError) as caught:
        load_settings(raw, "test", secret_keys=set())
    assert "mlplatform:kubernetesKubeconfig: set as plain text" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert load_settings(raw, "test", secret_keys={"mlplatform:kubernetesKubeconfig"}).kubernetes.kubeconfig


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"mlplatform:trainingInstanceType": "ml.p3.2xlarge"}, "mlplatform:trainingInstanceType: 'ml.p3.2xlarge'"),
        ({"mlplatform:trainingInstanceType": "ml.g5.96xlarge"}, "not in the table of GPU instance types"),
        (
            {"mlplatform:trainingInstanceCount": "2", "mlplatform:trainingInterContainerEncryption": "false"},
            "mlplatform:trainingInterContainerEncryption: false with 2 hosts",
        ),
    ],
)
def test_a_training_layout_the_image_cannot_run_is_refused_with_its_key(changes: dict[str, str], expected: str) -> None:
    """V100 (ml.p3) is below the compute capability PyTorch's CUDA 13 build supports (CUDA 13.0 release notes);
    an unknown GPU size would leave GPUs idle; several hosts exchange gradients unencrypted without the flag."""
    assert expected in error_of({**BASE, **changes})


def test_a_gpu_instance_type_plans_one_process_per_gpu() -> None:
    layout = settings_with(trainingInstanceType="ml.g5.12xlarge").training.layout
    assert (layout.gpus_per_host, layout.device, layout.world_size) == (4, "cuda", 4)
