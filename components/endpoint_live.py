"""What AWS holds for an endpoint right now, read at deploy time, and the capacity a rollout starts with.

The AWS provider's `UpdateEndpoint` never sets `RetainAllVariantProperties` (terraform-provider-aws
`internal/service/sagemaker/endpoint.go`, `resourceEndpointUpdate`), whose default is false (SageMaker API
reference, `UpdateEndpoint`): every blue/green rollout brings the new fleet up at the new config's
`InitialInstanceCount`, whatever Application Auto Scaling set the live fleet to. So the program reads the live
desired count before it builds the config, and the config carries it (`rollout_start_count`). It also reads which
model the live config serves, so the execution role keeps reading it while SageMaker can still fall back to it.

The read is one `DescribeEndpoint`, plus `DescribeEndpointConfig` and `DescribeModel` of the live config, with
the deployer's credentials, in previews and updates alike. Offline (the mock runtime) the reader is replaced with
`set_live_reader`; `tools.plan.run_program` answers from its mocks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from components.settings import AutoscalingSettings


class LiveEndpointReadError(RuntimeError):
    """The live endpoint could not be read (no credentials, no permission): the message says what is needed."""


@dataclass(frozen=True)
class LiveEndpoint:
    """One endpoint as `DescribeEndpoint` (and its config and model) report it."""

    name: str
    status: str
    """`EndpointStatus`: InService, Updating, RollingBack, Failed..."""
    config_name: str
    """The config SageMaker serves now (after a rollback: the old one)."""
    desired_instance_count: int | None
    """`DesiredInstanceCount` of the variant: what autoscaling last set (None while SageMaker reports none)."""
    model_name: str | None = None
    """Model of the live config's variant."""
    model_data_uri: str | None = None
    """S3 prefix the live model reads (`ModelDataSource.S3DataSource.S3Uri`)."""
    image: str | None = None
    """Image of the live model's primary container."""


LiveReader = Callable[[str, str, str], LiveEndpoint | None]
"""(endpoint name, variant name, region) -> the live endpoint, or None when it does not exist."""


def read_live_endpoint_boto3(endpoint_name: str, variant_name: str, region: str) -> LiveEndpoint | None:
    """The real reader: SageMaker's Describe* calls with the deployer's credentials."""
    import boto3
    import botocore.exceptions

    client = boto3.client("sagemaker", region_name=region)
    try:
        described = client.describe_endpoint(EndpointName=endpoint_name)
    except botocore.exceptions.ClientError as exc:
        # The provider treats exactly this message as "gone" (endpoint.go, findEndpoint).
        if "Could not find endpoint" in str(exc):
            return None
        raise LiveEndpointReadError(_read_error(endpoint_name, exc)) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise LiveEndpointReadError(_read_error(endpoint_name, exc)) from exc
    variant = next(
        (v for v in described.get("ProductionVariants", []) if v.get("VariantName") == variant_name),
        {},
    )
    config_name = str(described.get("EndpointConfigName", ""))
    model_name = model_data_uri = image = None
    try:
        config = client.describe_endpoint_config(EndpointConfigName=config_name)
        model_name = next(
            (v.get("ModelName") for v in config.get("ProductionVariants", []) if v.get("VariantName") == variant_name),
            None,
        )
        if model_name:
            container = client.describe_model(ModelName=model_name).get("PrimaryContainer", {})
            image = container.get("Image")
            source = container.get("ModelDataSource", {}).get("S3DataSource", {})
            model_data_uri = source.get("S3Uri") or container.get("ModelDataUrl")
    except botocore.exceptions.ClientError:
        # A config or model deleted by hand: the endpoint still serves, its files are simply not known.
        pass
    desired = variant.get("DesiredInstanceCount", variant.get("CurrentInstanceCount"))
    return LiveEndpoint(
        name=endpoint_name,
        status=str(described.get("EndpointStatus", "")),
        config_name=config_name,
        desired_instance_count=int(desired) if desired is not None else None,
        model_name=model_name,
        model_data_uri=model_data_uri,
        image=image,
    )


def _read_error(endpoint_name: str, exc: Exception) -> str:
    return (
        f"reading the live state of endpoint {endpoint_name} failed ({exc}); the deployer needs "
        "sagemaker:DescribeEndpoint, sagemaker:DescribeEndpointConfig and sagemaker:DescribeModel on it, so a "
        "rollout can start at the live capacity and keep the live model readable"
    )


_reader: LiveReader = read_live_endpoint_boto3


def set_live_reader(reader: LiveReader) -> LiveReader:
    """Replace the reader (offline plans and tests); returns the previous one so the caller can restore it."""
    global _reader
    previous, _reader = _reader, reader
    return previous


def read_live_endpoint(endpoint_name: str, variant_name: str, region: str) -> LiveEndpoint | None:
    """The live endpoint through the current reader (boto3 unless replaced)."""
    return _reader(endpoint_name, variant_name, region)


def rollout_fingerprint(values: Mapping[str, Any]) -> str:
    """A digest of everything a rollout is made of except the instance count (model, image, config, routing).

    The same fingerprint as the last deployment means no rollout is due, so the config keeps the count it was
    created with; otherwise a new config is coming anyway and it takes the live count.
    """
    text = json.dumps(values, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rollout_start_count(
    *,
    configured: int,
    autoscaling: AutoscalingSettings,
    live_desired: int | None,
    fingerprint: str,
    previous_fingerprint: str | None,
    previous_start_count: int | None,
) -> int:
    """Instances the new config's fleet starts with (`InitialInstanceCount`).

    - Nothing to roll out (same fingerprint as the last deployment): the count that deployment used, so the
      config is unchanged and autoscaling's moves between deployments never start a rollout by themselves.
    - Autoscaling on: never below the live desired count, clamped to min..max (a rollout under load starts with
      the capacity that carries the load; Application Auto Scaling keeps scaling the new fleet afterwards).
    - Autoscaling off: the configured count; nobody else changes the capacity then.
    """
    if previous_start_count is not None and previous_fingerprint == fingerprint:
        return previous_start_count
    if not autoscaling.enabled:
        return configured
    wanted = max(configured, live_desired or 0)
    return min(max(wanted, autoscaling.min_capacity), autoscaling.max_capacity)


def as_int(value: Any) -> int | None:
    """A stack output read back: an int, or a number in a string from some backends; None when unset."""
    if value is None or value == "":
        return None
    return int(value)
