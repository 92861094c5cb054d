"""`ArtifactStore`: the project KMS key and the S3 buckets for data, model artifacts and captured inference data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

# Bucket roles, in the order they are created. Each name becomes part of the bucket's logical name.
BUCKET_ROLES = ("data", "models", "capture")


class ArtifactStoreArgs(TypedDict):
    capture_retention_days: int
    """Days captured inference data is kept before S3 expires it."""
    noncurrent_version_days: int
    """Days a replaced or deleted object version is kept, in every bucket."""
    force_destroy: NotRequired[bool]
    """Let `pulumi destroy` delete buckets that still hold objects (dev only)."""
    protect: NotRequired[bool]
    """Protect the key and the buckets against deletion (prod)."""
    promotion_reader_accounts: NotRequired[Sequence[str]]
    """Accounts whose stacks promote this stack's models (cross-account): read `training/` in the model bucket and
    decrypt with the key, through S3 and ECR only."""


# Where training jobs write their model files (components/training.py): what a promoting account may read.
PROMOTED_MODELS_PREFIX = "training/"


def tls_only_policy(bucket_arn: str, reader_accounts: Sequence[str] = ()) -> str:
    """Bucket policy that denies every request not made over TLS (AWS's `aws:SecureTransport` pattern), and lets
    `reader_accounts` (cross-account promotion) list and read the trained models under `training/`."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    if reader_accounts:
        partition = bucket_arn.split(":")[1]
        principals = [f"arn:{partition}:iam::{a}:root" for a in sorted(set(reader_accounts))]
        statements += [
            {
                "Sid": "PromotingAccountsReadModels",
                "Effect": "Allow",
                "Principal": {"AWS": principals},
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/{PROMOTED_MODELS_PREFIX}*",
            },
            {
                "Sid": "PromotingAccountsListModels",
                "Effect": "Allow",
                "Principal": {"AWS": principals},
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{PROMOTED_MODELS_PREFIX}*"]}},
            },
        ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def key_policy(partition: str, account: str, region: str, reader_accounts: Sequence[str]) -> str:
    """The key's policy when other accounts promote from this stack: the account keeps full control (AWS's default
    key policy statement), and the promoting accounts may decrypt, only through S3 and ECR of this region."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "EnableIAMUserPermissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "PromotingAccountsDecrypt",
                    "Effect": "Allow",
                    "Principal": {"AWS": [f"arn:{partition}:iam::{a}:root" for a in sorted(set(reader_accounts))]},
                    "Action": ["kms:Decrypt", "kms:DescribeKey"],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {
                            "kms:ViaService": [f"s3.{region}.amazonaws.com", f"ecr.{region}.amazonaws.com"]
                        }
                    },
                },
            ],
        }
    )


class ArtifactStore(pulumi.ComponentResource):
    """KMS key (rotation on) and three private, versioned, SSE-KMS, TLS-only buckets.

    Example::

        store = ArtifactStore("mlplatform-dev", ArtifactStoreArgs(capture_retention_days=30,
                                                                  noncurrent_version_days=30))
        pulumi.export("modelBucket", store.model_bucket)
    """

    kms_key_arn: pulumi.Output[str]
    """ARN of the project key that encrypts every bucket (and, later, volumes, topics and repositories)."""
    kms_key_id: pulumi.Output[str]
    """Key id of the project key."""
    data_bucket: pulumi.Output[str]
    """Name of the bucket holding training and validation data."""
    model_bucket: pulumi.Output[str]
    """Name of the bucket holding model artifacts, baselines, checkpoints and monitoring reports."""
    capture_bucket: pulumi.Output[str]
    """Name of the bucket receiving endpoint data capture; objects expire after the retention period."""
    bucket_arns: dict[str, pulumi.Output[str]]
    """ARN of each bucket by role (`data`, `models`, `capture`)."""

    def __init__(self, name: str, args: ArtifactStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:storage:ArtifactStore", name, None, opts)
        protect = args.get("protect", False)
        child = pulumi.ResourceOptions(parent=self, protect=protect)

        readers = list(args.get("promotion_reader_accounts", []))
        policy: pulumi.Output[str] | None = None
        if readers:
            invoke = pulumi.InvokeOutputOptions(parent=self)
            identity = aws.get_caller_identity_output(opts=invoke)
            partition = aws.get_partition_output(opts=invoke)
            region = aws.get_region_output(opts=invoke)
            policy = pulumi.Output.all(partition.partition, identity.account_id, region.region).apply(
                lambda v: key_policy(v[0], v[1], v[2], readers)
            )
        key = aws.kms.Key(
            f"{name}-key",
            description=f"{name}: encrypts ML data, models, captured inference data and images",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            # Without promoting accounts: AWS's default key policy (the account controls the key through IAM).
            policy=policy,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/{name}",
            target_key_id=key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )

        buckets: dict[str, aws.s3.Bucket] = {}
        for role in BUCKET_ROLES:
            buckets[role] = self._private_bucket(
                f"{name}-{role}",
                key=key,
                noncurrent_version_days=args["noncurrent_version_days"],
                expire_current_after_days=args["capture_retention_days"] if role == "capture" else None,
                force_destroy=args.get("force_destroy", False),
                reader_accounts=readers if role == "models" else [],
                opts=child,
            )

        self.kms_key_arn = key.arn
        self.kms_key_id = key.key_id
        self.data_bucket = buckets["data"].bucket
        self.model_bucket = buckets["models"].bucket
        self.capture_bucket = buckets["capture"].bucket
        self.bucket_arns = {role: b.arn for role, b in buckets.items()}
        self.register_outputs(
            {
                "kms_key_arn": self.kms_key_arn,
                "kms_key_id": self.kms_key_id,
                "data_bucket": self.data_bucket,
                "model_bucket": self.model_bucket,
                "capture_bucket": self.capture_bucket,
            }
        )

    def _private_bucket(
        self,
        name: str,
        *,
        key: aws.kms.Key,
        noncurrent_version_days: int,
        expire_current_after_days: int | None,
        force_destroy: bool,
        reader_accounts: Sequence[str],
        opts: pulumi.ResourceOptions,
    ) -> aws.s3.Bucket:
        bucket = aws.s3.Bucket(name, force_destroy=force_destroy, opts=opts)
        config_opts = pulumi.ResourceOptions(parent=self)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=config_opts,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=config_opts,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": key.arn,
                    },
                    # S3 Bucket Keys cut KMS requests (and cost) by orders of magnitude for capture traffic.
                    "bucket_key_enabled": True,
                }
            ],
            opts=config_opts,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=config_opts,
        )
        # The policy waits for the public-access block: S3 refuses some policies while a block is being set.
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: tls_only_policy(arn, reader_accounts)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )
        rules: list[aws.s3.BucketLifecycleConfigurationRuleArgsDict] = [
            {
                "id": "expire-noncurrent-versions",
                "status": "Enabled",
                "filter": {},
                "noncurrent_version_expiration": {"noncurrent_days": noncurrent_version_days},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
            }
        ]
        if expire_current_after_days is not None:
            rules.append(
                {
                    "id": "expire-captured-data",
                    "status": "Enabled",
                    "filter": {},
                    "expiration": {"days": expire_current_after_days},
                }
            )
        aws.s3.BucketLifecycleConfiguration(f"{name}-lifecycle", bucket=bucket.id, rules=rules, opts=config_opts)
        return bucket
