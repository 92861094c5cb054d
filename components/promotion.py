"""`PromotedModelFiles`: a promoted model's files copied into this stack's own model bucket, kept for good.

Prod used to serve dev's files from dev's bucket, which dev may force-destroy: after a dev teardown prod could no
longer start an instance (scale-out, replacement, rollback). Promotion now copies the files the model contract
names (docs/model-contract.md) into `promoted/<source bucket>/<source prefix>` of this stack's model bucket,
encrypted with this stack's key, and the endpoint reads them there.

Each file is an `aws.s3.ObjectCopy` (server-side `CopyObject`). A new version changes its `source` and `key`; the
provider then copies again (terraform-provider-aws `internal/service/s3/object_copy.go`, `resourceObjectCopyUpdate`
copies when `key` or `source` changed), and `retain_on_delete` keeps the old version's objects when Pulumi
replaces or deletes a copy: a retained endpoint config may still serve them (a rollback, a scale-out of the old
fleet). Objects under `promoted/` are never expired: the bucket's lifecycle only expires noncurrent versions, and
each version has its own keys.
"""

from __future__ import annotations

import re
from typing import Final, TypedDict

import pulumi
import pulumi_aws as aws

# The files a model version consists of (docs/model-contract.md), relative to its prefix.
MODEL_FILES: Final = ("model.onnx", "model.int8.onnx", "manifest.json", "evaluation.json")
BASELINE_STATISTICS: Final = "baseline/statistics.json"
BASELINE_CONSTRAINTS: Final = "baseline/constraints.json"
PROMOTED_PREFIX: Final = "promoted"

_S3 = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)$")


class PromotionError(ValueError):
    """A promoted artifact's URI is not an S3 URI of the expected shape; the message names it."""


def split_s3(uri: str, what: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key), or a `PromotionError` naming `what`."""
    match = _S3.match(uri)
    if not match:
        raise PromotionError(f"{what} must be an S3 URI 's3://bucket/key', got {uri!r}")
    return match["bucket"], match["key"]


def promoted_prefix(source_model_data_uri: str) -> str:
    """The key prefix a promoted version lives under in this stack's bucket: `promoted/<bucket>/<prefix>`."""
    bucket, key = split_s3(source_model_data_uri, "the promoted model data URI")
    return f"{PROMOTED_PREFIX}/{bucket}/{key if key.endswith('/') else key + '/'}"


def copy_plan(model_data_uri: str, statistics_uri: str, constraints_uri: str) -> dict[str, tuple[str, str]]:
    """File slug -> (copy source `bucket/key`, destination key) for one promoted version."""
    bucket, key = split_s3(model_data_uri, "the promoted model data URI")
    key = key if key.endswith("/") else key + "/"
    dest = promoted_prefix(model_data_uri)
    plan = {_slug(f): (f"{bucket}/{key}{f}", f"{dest}{f}") for f in MODEL_FILES}
    for name, uri in ((BASELINE_STATISTICS, statistics_uri), (BASELINE_CONSTRAINTS, constraints_uri)):
        b, k = split_s3(uri, f"the promoted {name}")
        plan[_slug(name)] = (f"{b}/{k}", f"{dest}{name}")
    return plan


def _slug(path: str) -> str:
    return path.replace("/", "-").replace(".", "-")


class PromotedModelFilesArgs(TypedDict):
    model_data_uri: pulumi.Input[str]
    """S3 prefix of the promoted model's files in the source stack's bucket (ends with `/`)."""
    baseline_statistics_uri: pulumi.Input[str]
    """The promoted model's baseline statistics.json."""
    baseline_constraints_uri: pulumi.Input[str]
    """The promoted model's baseline constraints.json."""
    bucket: pulumi.Input[str]
    """This stack's model bucket, which receives the copies."""
    kms_key_arn: pulumi.Input[str]
    """This stack's key: the copies are encrypted with it."""


class PromotedModelFiles(pulumi.ComponentResource):
    """Copies of one promoted model version in this stack's bucket; old versions' copies stay (retain_on_delete).

    Example::

        files = PromotedModelFiles("mlplatform-prod-promoted", {
            "model_data_uri": model.model_data_uri, "baseline_statistics_uri": model.baseline_statistics_uri,
            "baseline_constraints_uri": model.baseline_constraints_uri, "bucket": store.model_bucket,
            "kms_key_arn": store.kms_key_arn})
        endpoint_args["model_data_uri"] = files.model_data_uri
    """

    model_data_uri: pulumi.Output[str]
    """`s3://<this bucket>/promoted/<source bucket>/<source prefix>`: the files the endpoint reads."""
    baseline_statistics_uri: pulumi.Output[str]
    """The copied baseline statistics.json."""
    baseline_constraints_uri: pulumi.Output[str]
    """The copied baseline constraints.json."""

    def __init__(self, name: str, args: PromotedModelFilesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:serving:PromotedModelFiles", name, None, opts)
        plan = pulumi.Output.all(
            args["model_data_uri"], args["baseline_statistics_uri"], args["baseline_constraints_uri"]
        ).apply(lambda v: copy_plan(v[0], v[1], v[2]))
        bucket = pulumi.Output.from_input(args["bucket"])
        copies: list[aws.s3.ObjectCopy] = []
        for path in (*MODEL_FILES, BASELINE_STATISTICS, BASELINE_CONSTRAINTS):
            slug = _slug(path)
            copies.append(
                aws.s3.ObjectCopy(
                    f"{name}-{slug}",
                    bucket=bucket,
                    key=plan.apply(lambda p, s=slug: p[s][1]),
                    source=plan.apply(lambda p, s=slug: p[s][0]),
                    server_side_encryption="aws:kms",
                    kms_key_id=args["kms_key_arn"],
                    bucket_key_enabled=True,
                    # A retained endpoint config may still serve the previous version's copies.
                    opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
                )
            )
        prefix = pulumi.Output.from_input(args["model_data_uri"]).apply(promoted_prefix)
        # The URIs come out once every copy exists, so nothing reads a prefix before it is complete.
        ready = pulumi.Output.all(*(c.key for c in copies))
        self.model_data_uri = pulumi.Output.all(bucket, prefix, ready).apply(lambda v: f"s3://{v[0]}/{v[1]}")
        self.baseline_statistics_uri = pulumi.Output.all(bucket, prefix, ready).apply(
            lambda v: f"s3://{v[0]}/{v[1]}{BASELINE_STATISTICS}"
        )
        self.baseline_constraints_uri = pulumi.Output.all(bucket, prefix, ready).apply(
            lambda v: f"s3://{v[0]}/{v[1]}{BASELINE_CONSTRAINTS}"
        )
        self.register_outputs(
            {
                "model_data_uri": self.model_data_uri,
                "baseline_statistics_uri": self.baseline_statistics_uri,
                "baseline_constraints_uri": self.baseline_constraints_uri,
            }
        )
