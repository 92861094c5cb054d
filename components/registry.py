"""`ModelRegistry`: the SageMaker model package group every training-pipeline run registers its candidate in.

pulumi-aws has no model-package resource: versions are created by the pipeline's RegisterModel step
(CreateModelPackage) and approved by a person (`aws sagemaker update-model-package --model-approval-status
Approved`, or the Studio console); the stack declares the group and, for a prod account that deploys this
stack's versions, a resource policy letting that account read them.

The provider (terraform-provider-aws internal/service/sagemaker/model_package_group.go) creates the group with
CreateModelPackageGroup, uses the group name as the resource id and reads the ARN back from
DescribeModelPackageGroup; the description forces a new group, so it is fixed text here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TypedDict

import pulumi
import pulumi_aws as aws

GROUP_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
"""CreateModelPackageGroup's ModelPackageGroupName (botocore's EntityName shape; the provider's validation)."""
READ_ACTIONS = (
    "sagemaker:DescribeModelPackageGroup",
    "sagemaker:DescribeModelPackage",
    "sagemaker:ListModelPackages",
)


class ModelRegistryArgs(TypedDict):
    group_name: str
    """Name of the model package group (letters, digits and hyphens, at most 63 characters)."""
    reader_accounts: Sequence[str]
    """12-digit AWS accounts allowed to read the group's versions (empty: no resource policy)."""
    protect: bool
    """Protect the group against deletion (it holds every registered version)."""


def group_reader_policy(group_arn: str, reader_accounts: Sequence[str]) -> str:
    """The group's resource policy: the reader accounts may describe and list the group and its versions.

    A version's ARN is `arn:...:model-package/<group>/<version>` (the group's ARN with `model-package-group/`
    replaced); AWS's cross-account model registry example grants both."""
    packages = group_arn.replace(":model-package-group/", ":model-package/", 1) + "/*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadModelVersions",
                    "Effect": "Allow",
                    "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in sorted(reader_accounts)]},
                    "Action": list(READ_ACTIONS),
                    "Resource": [group_arn, packages],
                }
            ],
        }
    )


class ModelRegistry(pulumi.ComponentResource):
    """One model package group (and its reader policy when other accounts deploy from it).

    Example::

        registry = ModelRegistry("mlplatform-dev-registry", {
            "group_name": "mlplatform-dev", "reader_accounts": ["123456789012"], "protect": False})
    """

    group_name: pulumi.Output[str]
    """The model package group's name (the pipeline's RegisterModel step names it)."""
    group_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ModelRegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:lifecycle:ModelRegistry", name, None, opts)
        group_name = args["group_name"]
        if not GROUP_NAME_PATTERN.match(group_name):
            raise ValueError(
                f"model package group name {group_name!r}: allowed 1-63 letters, digits and single hyphens between"
            )
        group = aws.sagemaker.ModelPackageGroup(
            f"{name}-group",
            model_package_group_name=group_name,
            model_package_group_description="Versions registered by the mlplatform training pipeline",
            opts=pulumi.ResourceOptions(parent=self, protect=args["protect"]),
        )
        readers = sorted(args["reader_accounts"])
        if readers:
            aws.sagemaker.ModelPackageGroupPolicy(
                f"{name}-policy",
                model_package_group_name=group.model_package_group_name,
                resource_policy=group.arn.apply(lambda arn: group_reader_policy(arn, readers)),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.group_name = group.model_package_group_name
        self.group_arn = group.arn
        self.register_outputs({"group_name": self.group_name, "group_arn": self.group_arn})
