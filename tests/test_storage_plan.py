"""ArtifactStore in the dev and prod plans: every bucket private, SSE-KMS with the project key, versioned, TLS-only."""

from __future__ import annotations

import json

from components import outputs
from tests.conftest import run_components
from tools.plan import Plan

BUCKET = "aws:s3/bucket:Bucket"


def _config_of(plan: Plan, type_token: str, bucket_name: str) -> dict:
    found = [r for r in plan.of_type(type_token) if r["inputs"]["bucket"] == bucket_name]
    assert len(found) == 1, f"{type_token} for {bucket_name}: {len(found)}"
    return found[0]["inputs"]


def _bucket_names(plan: Plan) -> dict[str, str]:
    """Logical name -> physical bucket name, as the mock provider named them."""
    return {
        r["name"]: plan.outputs[key]
        for r in plan.of_type(BUCKET)
        for key in (outputs.DATA_BUCKET, outputs.MODEL_BUCKET, outputs.CAPTURE_BUCKET)
        if plan.outputs[key].startswith(r["name"] + "-")
    }


def test_plan_has_three_buckets_and_a_rotating_key(any_plan: Plan) -> None:
    assert len(any_plan.of_type(BUCKET)) == 3
    key = any_plan.named(f"mlplatform-{any_plan.stack}-key")
    assert key["inputs"]["enableKeyRotation"] is True
    assert key["parent"] == f"mlplatform:storage:ArtifactStore::mlplatform-{any_plan.stack}"


def test_every_bucket_blocks_all_public_access(any_plan: Plan) -> None:
    for name in _bucket_names(any_plan).values():
        block = _config_of(any_plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", name)
        assert all(
            block[k] is True
            for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        )


def test_every_bucket_uses_sse_kms_with_the_project_key(any_plan: Plan) -> None:
    key_arn = any_plan.outputs[outputs.KMS_KEY_ARN]
    for name in _bucket_names(any_plan).values():
        rules = _config_of(
            any_plan, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", name
        )["rules"]
        default = rules[0]["applyServerSideEncryptionByDefault"]
        assert default == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key_arn}


def test_every_bucket_is_versioned(any_plan: Plan) -> None:
    for name in _bucket_names(any_plan).values():
        versioning = _config_of(any_plan, "aws:s3/bucketVersioning:BucketVersioning", name)
        assert versioning["versioningConfiguration"]["status"] == "Enabled"


def test_every_bucket_denies_requests_without_tls(any_plan: Plan) -> None:
    for name in _bucket_names(any_plan).values():
        policy = json.loads(_config_of(any_plan, "aws:s3/bucketPolicy:BucketPolicy", name)["policy"])
        deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert set(deny[0]["Resource"]) == {f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"}
        assert deny[0]["Principal"] == "*" and deny[0]["Action"] == "s3:*"


def test_captured_data_expires_after_the_stack_retention(dev_plan: Plan, prod_plan: Plan) -> None:
    for plan, days in ((dev_plan, 14), (prod_plan, 90)):
        rules = _config_of(
            plan,
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
            plan.outputs[outputs.CAPTURE_BUCKET],
        )["rules"]
        expire = [r for r in rules if r["id"] == "expire-captured-data"]
        assert expire[0]["expiration"] == {"days": days}
        assert expire[0]["status"] == "Enabled"


def test_only_the_capture_bucket_expires_current_objects(any_plan: Plan) -> None:
    for key in (outputs.DATA_BUCKET, outputs.MODEL_BUCKET):
        rules = _config_of(
            any_plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", any_plan.outputs[key]
        )["rules"]
        assert [r["id"] for r in rules] == ["expire-noncurrent-versions"]


def test_prod_protects_key_and_buckets_and_dev_does_not(dev_plan: Plan, prod_plan: Plan) -> None:
    for r in [*prod_plan.of_type(BUCKET), prod_plan.named("mlplatform-prod-key")]:
        assert r["options"].get("protect") is True, r["name"]
    for r in [*dev_plan.of_type(BUCKET), dev_plan.named("mlplatform-dev-key")]:
        assert not r["options"].get("protect"), r["name"]


def test_buckets_are_force_destroyable_only_in_dev(dev_plan: Plan, prod_plan: Plan) -> None:
    assert all(r["inputs"]["forceDestroy"] is True for r in dev_plan.of_type(BUCKET))
    assert all(r["inputs"]["forceDestroy"] is False for r in prod_plan.of_type(BUCKET))


def test_provider_tags_every_resource_with_project_stack_and_owner(any_plan: Plan) -> None:
    provider = any_plan.one("pulumi:providers:aws")
    tags = (
        json.loads(provider["inputs"]["defaultTags"])["tags"]
        if isinstance(provider["inputs"]["defaultTags"], str)
        else provider["inputs"]["defaultTags"]["tags"]
    )
    assert tags["project"] == "mlplatform"
    assert tags["stack"] == any_plan.stack
    assert tags["owner"] == "ml-platform-team"
    assert provider["inputs"]["region"] == "us-east-1"
    custom = [r for r in any_plan.resources if r["custom"] and r["type"].startswith("aws:")]
    assert all(r["options"].get("provider") == "aws" for r in custom)


def test_store_outputs_are_exported(any_plan: Plan) -> None:
    for key in (outputs.REGION, outputs.KMS_KEY_ARN, outputs.DATA_BUCKET, outputs.MODEL_BUCKET, outputs.CAPTURE_BUCKET):
        assert any_plan.outputs[key], key
    assert any_plan.outputs[outputs.KMS_KEY_ARN].startswith("arn:aws:kms:us-east-1:")


def test_component_children_are_named_after_it() -> None:
    from components.storage import ArtifactStore

    plan = run_components(lambda: ArtifactStore("store-x", {"capture_retention_days": 3, "noncurrent_version_days": 2}))
    children = plan.children("mlplatform:storage:ArtifactStore::store-x")
    assert len(children) == 1 + 1 + 3 * 7  # key, alias, 3 x (bucket + 6 bucket configurations)
    assert all(c["name"].startswith("store-x-") for c in children)
