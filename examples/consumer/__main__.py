"""Example consumer stack: an application's task role that may invoke the platform's endpoint.

It reads the mlplatform stack's outputs through a `StackReference` (names from `components/outputs.py`'s
contract), attaches the platform's invoke policy to its own role, and hands the endpoint name and region to
the application as plain outputs (e.g. for its container environment).
"""

import pulumi
import pulumi_aws as aws

platform_stack = pulumi.Config("consumer").require("platformStack")
platform = pulumi.StackReference(platform_stack)

role = aws.iam.Role(
    "scoring-app-task",
    assume_role_policy=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",'
        ' "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}'
    ),
    description=f"scoring application: may invoke the endpoint of {platform_stack}",
)
aws.iam.RolePolicyAttachment(
    "scoring-app-invoke",
    role=role.name,
    policy_arn=platform.require_output("invokePolicyArn"),
)

pulumi.export("taskRoleArn", role.arn)
pulumi.export("endpointName", platform.require_output("endpointName"))
pulumi.export("region", platform.require_output("region"))
