"""The program's deploy-time read of the live endpoint, and the instance count a rollout starts with.

Application Auto Scaling moves a SageMaker variant with `UpdateEndpointWeightsAndCapacities`, which sets the
variant's `DesiredInstanceCount` (SageMaker API reference, ProductionVariantSummary.DesiredInstanceCount: "the
number of instances requested in the UpdateEndpointWeightsAndCapacities request"); moto implements the same call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from components.endpoint_live import (
    LiveEndpointReadError,
    read_live_endpoint_boto3,
    rollout_fingerprint,
    rollout_start_count,
)
from components.settings import AutoscalingSettings

REGION = "us-east-1"
IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-serving@sha256:" + "5e" * 32
PREFIX = "s3://mlplatform-prod-models-1a2b3c4/promoted/dev/training/job-1/output/model/"
ON = AutoscalingSettings(enabled=True, min_capacity=4, max_capacity=12)
OFF = AutoscalingSettings(enabled=False)


@pytest.fixture
def sagemaker() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("sagemaker", region_name=REGION)
        client.create_model(
            ModelName="m-1",
            ExecutionRoleArn="arn:aws:iam::111122223333:role/endpoint-role",
            PrimaryContainer={
                "Image": IMAGE,
                "ModelDataSource": {
                    "S3DataSource": {"S3Uri": PREFIX, "S3DataType": "S3Prefix", "CompressionType": "None"}
                },
            },
        )
        client.create_endpoint_config(
            EndpointConfigName="c-1",
            ProductionVariants=[
                {
                    "VariantName": "primary",
                    "ModelName": "m-1",
                    "InstanceType": "ml.c5.xlarge",  # moto knows an older list of instance types
                    "InitialInstanceCount": 4,
                }
            ],
        )
        client.create_endpoint(EndpointName="mlplatform-prod", EndpointConfigName="c-1")
        yield client


def test_reader_returns_the_count_autoscaling_set_and_the_live_model(sagemaker: Any) -> None:
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="mlplatform-prod",
        DesiredWeightsAndCapacities=[{"VariantName": "primary", "DesiredInstanceCount": 10}],
    )
    live = read_live_endpoint_boto3("mlplatform-prod", "primary", REGION)
    assert live is not None
    assert (live.config_name, live.desired_instance_count) == ("c-1", 10)
    assert (live.model_name, live.model_data_uri, live.image) == ("m-1", PREFIX, IMAGE)


def test_reader_answers_none_for_an_endpoint_not_created_yet(sagemaker: Any) -> None:
    assert read_live_endpoint_boto3("mlplatform-staging", "primary", REGION) is None


def test_reader_names_the_permissions_it_needs_when_aws_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y")
    stubber = Stubber(client)
    stubber.add_client_error("describe_endpoint", "AccessDeniedException", "not authorized", 400)
    stubber.activate()
    monkeypatch.setattr(boto3, "client", lambda *_a, **_k: client)
    with pytest.raises(
        LiveEndpointReadError,
        match=r"endpoint mlplatform-prod failed .* needs sagemaker:DescribeEndpoint",
    ):
        read_live_endpoint_boto3("mlplatform-prod", "primary", REGION)


@pytest.mark.parametrize(
    ("autoscaling", "configured", "live", "previous", "expected"),
    [
        (ON, 4, None, None, 4),  # first deployment: the configured count
        (ON, 4, 10, None, 10),  # autoscaled to 10: start at 10
        (ON, 4, 2, None, 4),  # below the configured count (and min): the configured count
        (ON, 4, 30, None, 12),  # above max (max lowered since): clamped to max
        (ON, 4, 10, ("same", 6), 6),  # nothing to roll out: the last config's count, whatever autoscaling did
        (ON, 4, 10, ("other", 6), 10),  # a rollout is due: the live count again
        (OFF, 4, 10, None, 4),  # autoscaling off: the configured count
    ],
)
def test_rollout_start_count(
    autoscaling: AutoscalingSettings, configured: int, live: int | None, previous: Any, expected: int
) -> None:
    previous_fingerprint, previous_count = previous or (None, None)
    assert (
        rollout_start_count(
            configured=configured,
            autoscaling=autoscaling,
            live_desired=live,
            fingerprint="same",
            previous_fingerprint=previous_fingerprint,
            previous_start_count=previous_count,
        )
        == expected
    )


def test_fingerprint_ignores_key_order_and_changes_with_any_value() -> None:
    assert rollout_fingerprint({"a": 1, "b": [1, 2]}) == rollout_fingerprint({"b": [1, 2], "a": 1})
    assert rollout_fingerprint({"a": 1}) != rollout_fingerprint({"a": 2})
