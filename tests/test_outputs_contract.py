"""Every stack exports exactly the documented output contract (components/outputs.py, docs/reference.md's table)."""

from __future__ import annotations

from typing import Any

from components.outputs import (
    DESCRIPTIONS,
    KUBERNETES_CANARY_IMAGE,
    KUBERNETES_OUTPUTS,
    SAGEMAKER_OUTPUTS,
    TRAINING_OUTPUTS,
)
from tools.plan import Plan


def test_stack_exports_exactly_the_documented_outputs(dev_plan: Plan, prod_plan: Plan) -> None:
    assert set(dev_plan.outputs) == set(DESCRIPTIONS) | set(TRAINING_OUTPUTS)
    assert set(prod_plan.outputs) == set(DESCRIPTIONS)


def test_kubernetes_target_exports_the_kubernetes_outputs_instead_of_the_endpoints(replan: Any) -> None:
    from tests.test_kubernetes_plan import KUBERNETES

    plan = replan("prod", {**KUBERNETES, "mlplatform:servingTarget": "kubernetes"})
    expected = (set(DESCRIPTIONS) - SAGEMAKER_OUTPUTS) | set(KUBERNETES_OUTPUTS) - {KUBERNETES_CANARY_IMAGE}
    assert set(plan.outputs) == expected


def test_both_targets_export_both_contracts(replan: Any) -> None:
    from tests.test_kubernetes_plan import KUBERNETES

    plan = replan("prod", {**KUBERNETES, "mlplatform:servingTarget": "both"})
    assert set(plan.outputs) == set(DESCRIPTIONS) | set(KUBERNETES_OUTPUTS) - {KUBERNETES_CANARY_IMAGE}


def test_lifecycle_exports_the_training_pipeline_name() -> None:
    from components.outputs import LIFECYCLE_OUTPUTS, TRAINING_PIPELINE_NAME
    from tests.conftest import plan_with

    plan = plan_with("prod", {"mlplatform:lifecycleEnabled": "true"})
    assert set(plan.outputs) == set(DESCRIPTIONS) | set(LIFECYCLE_OUTPUTS)
    assert plan.outputs[TRAINING_PIPELINE_NAME] == "mlplatform-prod-lifecycle-training"


def test_prod_serves_what_dev_produced(prod_plan: Plan) -> None:
    from tools.example_outputs import dev_outputs

    dev = dev_outputs()
    for key in ("modelDataUri", "baselineStatisticsUri", "baselineConstraintsUri", "servingImage"):
        assert prod_plan.outputs[key] == dev[key]


def test_no_output_is_empty(any_plan: Plan) -> None:
    assert [k for k, v in any_plan.outputs.items() if v in (None, "", [], {})] == []
    assert isinstance(any_plan.outputs["endpointAutoscalingEnabled"], bool)


def test_a_training_stack_exports_the_edge_bundle_beside_the_model_files(dev_plan: Plan) -> None:
    """The job writes `edge.tar.gz` into /opt/ml/model (training/edge.py), which SageMaker uploads uncompressed
    under the model data prefix (components/training.py `model_prefix`)."""
    assert dev_plan.outputs["edgeBundleUri"] == dev_plan.outputs["modelDataUri"] + "edge.tar.gz"
    assert dev_plan.outputs["edgeBundleUri"].startswith("s3://")
