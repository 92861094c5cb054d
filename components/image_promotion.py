"""`PromotedImage`: a promoted serving image copied, same digest, into a repository the promoting stack owns.

Prod used to pull dev's image from dev's repository, whose lifecycle keeps the newest images only (20 by default)
and which a dev teardown deletes: after enough dev builds prod could no longer start an instance. The copy runs
during `pulumi up` (a dynamic resource; `components/registry_copy.py` speaks the registry API with an ECR token
of each registry), so the endpoint's model pins `<prod repository>@<the same digest>`.

The repository has no expiry rule: a promoted image stays as long as the repository, since a retained endpoint
config (a rollback target, the old fleet during a rollout) may pull it at any time; delete old promotions by hand
once no config can serve them. Replacing or deleting the copy resource never deletes the image.
"""

from __future__ import annotations

import re
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

_ECR_REF = re.compile(
    r"^(?P<registry>(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?)/"
    r"(?P<repository>[a-z0-9._/-]+)@(?P<digest>sha256:[0-9a-f]{64})$"
)


class ImagePromotionError(ValueError):
    """The image to promote is not an ECR image by digest; the message names it."""


def parse_ecr_ref(ref: str) -> dict[str, str]:
    """`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO@sha256:...` -> its registry, account, region, repository, digest."""
    match = _ECR_REF.match(ref)
    if not match:
        raise ImagePromotionError(f"the promoted serving image must be an ECR image by digest, got {ref!r}")
    return match.groupdict()


def promoted_ref(repository_url: str, source_ref: str) -> str:
    """The copy's reference: this stack's repository, the source's digest."""
    return f"{repository_url}@{parse_ecr_ref(source_ref)['digest']}"


def _ecr_registry(account: str, region: str) -> Any:
    """A `components.registry_copy.Registry` for one ECR registry, authorized with a fresh token."""
    import boto3

    from components.registry_copy import Registry

    token = boto3.client("ecr", region_name=region).get_authorization_token(registryIds=[account])
    data = token["authorizationData"][0]
    return Registry(data["proxyEndpoint"], f"Basic {data['authorizationToken']}")


class _ImageCopyProvider(pulumi.dynamic.ResourceProvider):
    """Create = copy the image; a new source or target = a new copy; delete = leave the image where it is."""

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        from components.registry_copy import copy_image

        source, target = parse_ecr_ref(props["source_image"]), parse_ecr_ref(props["target_ref"])
        copy_image(
            _ecr_registry(source["account"], source["region"]),
            source["repository"],
            _ecr_registry(target["account"], target["region"]),
            target["repository"],
            source["digest"],
        )
        return pulumi.dynamic.CreateResult(id_=props["target_ref"], outs=dict(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = [k for k in ("source_image", "target_ref") if olds.get(k) != news.get(k)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # A retained endpoint config may still pull this digest: the image stays.
        return None


class _ImageCopy(pulumi.dynamic.Resource):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        super().__init__(_ImageCopyProvider(), name, props, opts)


class PromotedImageArgs(TypedDict):
    source_image: pulumi.Input[str]
    """The image to promote, by digest, in the source stack's repository."""
    repository_name: str
    """This stack's repository for promoted images (e.g. `mlplatform-prod-serving-promoted`)."""
    kms_key_arn: pulumi.Input[str]
    """This stack's key: the repository is encrypted with it."""
    protect: NotRequired[bool]
    """Protect the repository against deletion (prod)."""


class PromotedImage(pulumi.ComponentResource):
    """A repository of this stack and the promoted image copied into it, same digest.

    Example::

        image = PromotedImage("mlplatform-prod-serving-promoted", {
            "source_image": model.serving_image, "repository_name": "mlplatform-prod-serving-promoted",
            "kms_key_arn": store.kms_key_arn, "protect": True})
        endpoint_args["image"] = image.image_ref
    """

    image_ref: pulumi.Output[str]
    """`<this stack's repository>@<the source's digest>`, once the copy exists."""
    repository_arn: pulumi.Output[str]
    """ARN of this stack's repository of promoted images."""

    def __init__(self, name: str, args: PromotedImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:serving:PromotedImage", name, None, opts)
        repository = aws.ecr.Repository(
            f"{name}-repository",
            name=args["repository_name"],
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": args["kms_key_arn"]}],
            # Never force-deleted with images in it: retained endpoint configs pull from here.
            force_delete=False,
            opts=pulumi.ResourceOptions(parent=self, protect=args.get("protect", False)),
        )
        target_ref = pulumi.Output.all(repository.repository_url, args["source_image"]).apply(
            lambda v: promoted_ref(v[0], v[1])
        )
        copy = _ImageCopy(
            f"{name}-copy",
            {"source_image": args["source_image"], "target_ref": target_ref},
            pulumi.ResourceOptions(parent=self, depends_on=[repository]),
        )
        self.image_ref = pulumi.Output.all(copy.id, target_ref).apply(lambda v: str(v[1]))
        self.repository_arn = repository.arn
        self.register_outputs({"image_ref": self.image_ref, "repository_arn": self.repository_arn})


def pull_policy(partition: str, reader_accounts: list[str]) -> str:
    """Repository policy letting `reader_accounts` pull (cross-account promotion copies the image from here)."""
    import json

    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PromotingAccountsPull",
                    "Effect": "Allow",
                    "Principal": {"AWS": [f"arn:{partition}:iam::{a}:root" for a in sorted(set(reader_accounts))]},
                    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                }
            ],
        }
    )


class RepositoryPullGrantArgs(TypedDict):
    repository_url: pulumi.Input[str]
    """`ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME` of the repository promoted images are copied from."""
    reader_accounts: list[str]
    """Accounts whose stacks promote from this one (`mlplatform:storagePromotionReaderAccounts`)."""


class RepositoryPullGrant(pulumi.ComponentResource):
    """The source stack's side of a cross-account promotion: other accounts may pull its serving images."""

    def __init__(self, name: str, args: RepositoryPullGrantArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:serving:RepositoryPullGrant", name, None, opts)
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        accounts = list(args["reader_accounts"])
        policy = aws.ecr.RepositoryPolicy(
            f"{name}-policy",
            repository=pulumi.Output.from_input(args["repository_url"]).apply(lambda url: url.split("/", 1)[1]),
            policy=partition.partition.apply(lambda p: pull_policy(p, accounts)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"policy_id": policy.id})
