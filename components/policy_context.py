"""`PolicyContext`: what the policy pack needs to know about the stack, registered as a component's inputs.

The pack (policy/) sees resources, not stack config; this component hands it the environment, the GPU types
the stack may use and the rules it waives with a written reason, so each exception shows in the plan.
"""

from __future__ import annotations

from typing import TypedDict

import pulumi

from policy.rules import RULES


class PolicyContextArgs(TypedDict):
    environment: str
    """Kind of environment (dev, staging, prod): prod-only rules apply in prod."""
    allowed_gpu_instance_types: list[str]
    """GPU instance types this stack may use."""
    exceptions: dict[str, str]
    """Rule name -> written reason for every rule this stack waives."""


class PolicyContext(pulumi.ComponentResource):
    """Carries the stack's policy inputs; creates no AWS resource."""

    def __init__(self, name: str, args: PolicyContextArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        unknown = sorted(set(args["exceptions"]) - set(RULES))
        if unknown:
            raise ValueError(
                f"mlplatform:policyExceptions names unknown rules {unknown}; rules are: {', '.join(sorted(RULES))}"
            )
        context = {
            "environment": args["environment"],
            "allowedGpuInstanceTypes": list(args["allowed_gpu_instance_types"]),
            "exceptions": dict(args["exceptions"]),
        }
        super().__init__("mlplatform:policy:PolicyContext", name, context, opts)
        # The pack's rules are stack policies, and for those the engine passes each resource's OUTPUTS
        # (pulumi/pulumi pkg/resource/deploy/step_generator.go, AnalyzeResources; pulumi/pulumi-policy#135): a
        # component's outputs are what it registers. Registering nothing made every stack read as dev with no
        # allowed GPU types under the real CLI. The inputs stay too: resource policies and the offline plan read them.
        self.register_outputs(context)
