"""IAM documents every component builds the same way: service trust policies and SageMaker's VPC access."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def service_trust_policy(service: str, account_id: str) -> str:
    """A role `service` (e.g. `sagemaker.amazonaws.com`) may assume, only when acting for `account_id`.

    `aws:SourceAccount` is AWS's confused-deputy guard: the service cannot assume the role on behalf of another
    account's resources.
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                }
            ],
        }
    )


def sagemaker_vpc_statements(
    partition: str, region: str, account_id: str, subnet_ids: Sequence[str], security_group_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """What SageMaker needs to attach a job or endpoint to a VPC: interfaces in our subnets and groups only."""
    ec2 = f"arn:{partition}:ec2:{region}:{account_id}"
    interfaces = f"{ec2}:network-interface/*"
    return [
        {
            "Sid": "VpcNetworkInterfaces",
            "Effect": "Allow",
            "Action": "ec2:CreateNetworkInterface",
            "Resource": [
                interfaces,
                *(f"{ec2}:subnet/{s}" for s in subnet_ids),
                *(f"{ec2}:security-group/{g}" for g in security_group_ids),
            ],
        },
        {
            "Sid": "VpcManageNetworkInterfaces",
            "Effect": "Allow",
            "Action": [
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
            ],
            "Resource": interfaces,
        },
        {
            # EC2's Describe calls have no resource-level permissions: AWS requires Resource "*".
            "Sid": "VpcDescribe",
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeVpcs",
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
            ],
            "Resource": "*",
        },
    ]
