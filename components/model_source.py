"""Where the deployed model comes from: this stack's training job, another stack's outputs, or pinned values.

Whatever the source, the rest of the program gets the same `ModelArtifacts` and exports the same outputs, so
prod can promote what dev trained (`stack`) or a reviewed pinned version (`pinned`) without other changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.outputs import (
    BASELINE_CONSTRAINTS_URI,
    BASELINE_STATISTICS_URI,
    KMS_KEY_ARN,
    MODEL_DATA_URI,
    SERVING_IMAGE,
)
from components.registry_source import RegistrySourceError, SageMakerReader, artifacts_of, find_approved_package
from components.settings import PROJECT, ModelSourceSettings, config_key, image_by_digest, s3_uri
from components.training import ModelTraining

__all__ = [
    "BASELINE_CONSTRAINTS_URI",
    "BASELINE_STATISTICS_URI",
    "MODEL_DATA_URI",
    "SERVING_IMAGE",
    "ModelArtifacts",
    "ModelSourceError",
    "check_stack_outputs",
    "resolve_model_artifacts",
]


class ModelSourceError(ValueError):
    """The model source cannot provide a model: a missing or malformed output of the referenced stack, or a
    `train` source without a training job; the message names the stack, the output and what to do."""


@dataclass(frozen=True)
class ModelArtifacts:
    """One model version, ready to deploy and monitor."""

    model_data_uri: pulumi.Output[str]
    """S3 prefix of the uncompressed model files (ends with `/`)."""
    baseline_statistics_uri: pulumi.Output[str]
    """S3 URI of the training data's `statistics.json` (Model Monitor format)."""
    baseline_constraints_uri: pulumi.Output[str]
    """S3 URI of the suggested `constraints.json` (Model Monitor format)."""
    serving_image: pulumi.Output[str]
    """Serving image by digest (`REPO@sha256:...`)."""
    source_kms_key_arn: pulumi.Output[str] | None = None
    """Key of the stack the model is promoted from (its files and image are encrypted with it), if any."""

    def exports(self) -> dict[str, pulumi.Output[str]]:
        """The stack outputs these artifacts become, by output name."""
        return {
            MODEL_DATA_URI: self.model_data_uri,
            BASELINE_STATISTICS_URI: self.baseline_statistics_uri,
            BASELINE_CONSTRAINTS_URI: self.baseline_constraints_uri,
            SERVING_IMAGE: self.serving_image,
        }


def _prefix_uri(value: str) -> str:
    s3_uri(value)
    if not value.endswith("/"):
        raise ValueError(f"must be an S3 prefix ending with '/', got {value!r}")
    return value


def _json_uri(value: str) -> str:
    s3_uri(value)
    if not value.endswith(".json"):
        raise ValueError(f"must be the S3 URI of a JSON file, got {value!r}")
    return value


def _kms_key_arn(value: str) -> str:
    if not re.fullmatch(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+", value):
        raise ValueError(f"must be a KMS key ARN, got {value!r}")
    return value


# Each output the model needs, and the check its value must pass.
_CHECKS: dict[str, Callable[[str], str]] = {
    MODEL_DATA_URI: _prefix_uri,
    BASELINE_STATISTICS_URI: _json_uri,
    BASELINE_CONSTRAINTS_URI: _json_uri,
    SERVING_IMAGE: image_by_digest,
}
# A promoted stack's outputs also carry its key: its model files and image are encrypted with it.
_STACK_CHECKS: dict[str, Callable[[str], str]] = {**_CHECKS, KMS_KEY_ARN: _kms_key_arn}


def check_stack_outputs(stack: str, outputs: Mapping[str, Any]) -> dict[str, str]:
    """The model outputs of `stack` and its key, checked; every missing or malformed one is named in one error."""
    problems: list[str] = []
    checked: dict[str, str] = {}
    missing = [key for key in _STACK_CHECKS if outputs.get(key) in (None, "")]
    if missing:
        problems.append(
            f"no output {', '.join(repr(m) for m in missing)} (deploy that stack with mlplatform:modelSource "
            "train first, or promote pinned values with mlplatform:modelSource pinned)"
        )
    for key, check in _STACK_CHECKS.items():
        value = outputs.get(key)
        if key in missing:
            continue
        if not isinstance(value, str):
            problems.append(f"output {key!r} must be a string, got {value!r}")
            continue
        try:
            checked[key] = check(value)
        except ValueError as exc:
            problems.append(f"output {key!r} {exc}")
    if problems:
        raise ModelSourceError(f"stack {stack!r} (mlplatform:modelStack): " + "; ".join(problems))
    return checked


def resolve_model_artifacts(
    name: str,
    source: ModelSourceSettings,
    *,
    training: ModelTraining | None = None,
    serving_image: pulumi.Input[str] | None = None,
    opts: pulumi.ResourceOptions | None = None,
    registry: SageMakerReader | None = None,
) -> ModelArtifacts:
    """The model to deploy, from the configured source.

    `train` takes the files of `training` and the image `serving_image` (both required then); `stack` reads
    the four outputs of `source.stack` through a `StackReference` named `<name>-model-source` (a missing or
    malformed one fails the deployment with a message naming the stack and the output); `pinned` takes the
    values from the settings (already validated there); `registry` reads the Approved version of
    `source.package_group` through `registry` (a SageMaker client; components/registry_source.py) and refuses
    a version that is not approved.
    """
    if source.source == "registry":
        if registry is None or source.package_group is None:
            raise ModelSourceError("model source 'registry' needs mlplatform:modelPackageGroup and a SageMaker client")
        try:
            found = artifacts_of(find_approved_package(registry, source.package_group, source.package_version))
        except RegistrySourceError as exc:
            raise ModelSourceError(str(exc)) from None
        return ModelArtifacts(
            model_data_uri=pulumi.Output.from_input(found["model_data_uri"]),
            baseline_statistics_uri=pulumi.Output.from_input(found["baseline_statistics_uri"]),
            baseline_constraints_uri=pulumi.Output.from_input(found["baseline_constraints_uri"]),
            serving_image=pulumi.Output.from_input(found["serving_image"]),
        )
    if source.source == "train":
        if training is None or serving_image is None:
            raise ModelSourceError(
                "model source 'train' needs this stack's training job and serving image: build both, or set "
                "mlplatform:modelSource to 'stack' or 'pinned'"
            )
        return ModelArtifacts(
            model_data_uri=training.model_data_uri,
            baseline_statistics_uri=training.baseline_statistics_uri,
            baseline_constraints_uri=training.baseline_constraints_uri,
            serving_image=pulumi.Output.from_input(serving_image),
        )
    if source.source == "stack":
        if not source.stack:  # settings refuse this already; kept for direct use
            raise ModelSourceError("model source 'stack' needs mlplatform:modelStack, e.g. 'org/mlplatform/dev'")
        ref = pulumi.StackReference(f"{name}-model-source", stack_name=source.stack, opts=opts)
        stack = source.stack
        checked = ref.outputs.apply(lambda outputs: check_stack_outputs(stack, outputs))
        return ModelArtifacts(
            model_data_uri=checked[MODEL_DATA_URI],
            baseline_statistics_uri=checked[BASELINE_STATISTICS_URI],
            baseline_constraints_uri=checked[BASELINE_CONSTRAINTS_URI],
            serving_image=checked[SERVING_IMAGE],
            source_kms_key_arn=checked[KMS_KEY_ARN],
        )
    fields = {
        MODEL_DATA_URI: "data_uri",
        BASELINE_STATISTICS_URI: "baseline_statistics_uri",
        BASELINE_CONSTRAINTS_URI: "baseline_constraints_uri",
        SERVING_IMAGE: "serving_image",
    }
    for output, field in fields.items():
        key = f"{PROJECT}:{config_key(ModelSourceSettings, field)}"
        value = getattr(source, field)
        if value is None:  # settings refuse this already; kept for direct use
            raise ModelSourceError(f"model source 'pinned' needs {key}")
        try:
            _CHECKS[output](value)
        except ValueError as exc:
            raise ModelSourceError(f"{key} {exc}") from None
    return ModelArtifacts(
        model_data_uri=pulumi.Output.from_input(str(source.data_uri)),
        baseline_statistics_uri=pulumi.Output.from_input(str(source.baseline_statistics_uri)),
        baseline_constraints_uri=pulumi.Output.from_input(str(source.baseline_constraints_uri)),
        serving_image=pulumi.Output.from_input(str(source.serving_image)),
    )
