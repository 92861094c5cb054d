"""Realistic outputs of other stacks, answered to `StackReference`s in offline plans and tests.

The prod stack promotes what dev produced by reading dev's outputs; offline there is no dev state, so the
mock runtime answers with these values, shaped exactly like `components/outputs.py` says dev exports them.
"""

from __future__ import annotations

from typing import Any

from components import outputs
from tools.mocks import MOCK_ACCOUNT_ID, MOCK_REGION


def dev_outputs(region: str = MOCK_REGION) -> dict[str, Any]:
    job = "mlplatform-dev-train-3f9a0c1d2e4b5a69"
    return {
        outputs.REGION: region,
        outputs.KMS_KEY_ARN: f"arn:aws:kms:{region}:{MOCK_ACCOUNT_ID}:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        outputs.DATA_BUCKET: "mlplatform-dev-data-0a1b2c3",
        outputs.MODEL_BUCKET: "mlplatform-dev-models-0a1b2c3",
        outputs.CAPTURE_BUCKET: "mlplatform-dev-capture-0a1b2c3",
        outputs.TRAINING_JOB_NAME: f"{job}",
        outputs.MODEL_DATA_URI: f"s3://mlplatform-dev-models-0a1b2c3/training/{job}/output/model/",
        outputs.BASELINE_STATISTICS_URI: (
            f"s3://mlplatform-dev-models-0a1b2c3/training/{job}/output/model/baseline/statistics.json"
        ),
        outputs.BASELINE_CONSTRAINTS_URI: (
            f"s3://mlplatform-dev-models-0a1b2c3/training/{job}/output/model/baseline/constraints.json"
        ),
        outputs.EDGE_BUNDLE_URI: f"s3://mlplatform-dev-models-0a1b2c3/training/{job}/output/model/edge.tar.gz",
        outputs.SERVING_IMAGE: (
            f"{MOCK_ACCOUNT_ID}.dkr.ecr.{region}.amazonaws.com/mlplatform-dev-serving@sha256:" + "5e" * 32
        ),
    }


def example_stack_outputs() -> dict[str, dict[str, Any]]:
    """Outputs by fully qualified stack name, for every stack a committed config may reference."""
    return {"organization/mlplatform/dev": dev_outputs(), "mlplatform/dev": dev_outputs(), "dev": dev_outputs()}
