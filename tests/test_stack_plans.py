"""The committed dev and prod stacks, end to end: training in dev, promotion to prod, endpoint, monitor, alarms."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from components.settings import is_gpu_instance
from tools.example_outputs import dev_outputs
from tools.plan import Plan

TRAINING_JOB = "aws:sagemaker/trainingJob:TrainingJob"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
MODEL = "aws:sagemaker/model:Model"


def test_dev_trains_on_a_gpu_with_spot_and_checkpoints(dev_plan: Plan) -> None:
    job = dev_plan.one(TRAINING_JOB)["inputs"]
    assert is_gpu_instance(job["resourceConfig"]["instanceType"])
    assert job["enableManagedSpotTraining"] is True
    assert job["checkpointConfig"]["s3Uri"].startswith("s3://")
    assert job["stoppingCondition"]["maxWaitTimeInSeconds"] > job["stoppingCondition"]["maxRuntimeInSeconds"]
    assert job["outputDataConfig"]["compressionType"] == "NONE"


def test_dev_serves_what_it_trained(dev_plan: Plan) -> None:
    model = dev_plan.one(MODEL)["inputs"]["primaryContainer"]
    uri = model["modelDataSource"]["s3DataSources"][0]["s3Uri"]
    assert uri == dev_plan.outputs["modelDataUri"]
    assert dev_plan.outputs["trainingJobName"] in uri
    assert model["image"] == dev_plan.outputs["servingImage"]
    assert "@sha256:" in model["image"]


def test_prod_does_not_train_and_promotes_devs_model(prod_plan: Plan) -> None:
    assert prod_plan.of_type(TRAINING_JOB) == []
    assert [
        r["inputs"]["name"]
        for r in prod_plan.of_type("pulumi:pulumi:StackReference")
        if r["name"].endswith("model-source")
    ] == ["organization/mlplatform/dev"]
    container = prod_plan.one(MODEL)["inputs"]["primaryContainer"]
    # The same image (same digest) from prod's own repository, and prod's own copy of the files
    # (components/image_promotion.py, components/promotion.py).
    dev_image = dev_outputs()["servingImage"]
    assert container["image"].endswith("/mlplatform-prod-serving-promoted@" + dev_image.partition("@")[2])
    # Prod reads its own copy of dev's files (components/promotion.py), copied from dev's prefix.
    dev_prefix = dev_outputs()["modelDataUri"].removeprefix("s3://")
    served = container["modelDataSource"]["s3DataSources"][0]["s3Uri"]
    assert served == f"s3://{prod_plan.outputs['modelBucket']}/promoted/{dev_prefix}"
    sources = sorted(r["inputs"]["source"] for r in prod_plan.of_type("aws:s3/objectCopy:ObjectCopy"))
    assert sources == sorted(
        dev_prefix + f
        for f in (
            "model.onnx",
            "model.int8.onnx",
            "manifest.json",
            "evaluation.json",
            "baseline/statistics.json",
            "baseline/constraints.json",
        )
    )


def test_both_stacks_have_model_config_and_endpoint(any_plan: Plan) -> None:
    endpoint = any_plan.one(ENDPOINT)
    config = any_plan.one(CONFIG)
    model = any_plan.one(MODEL)
    assert endpoint["inputs"]["name"] == f"mlplatform-{any_plan.stack}"
    assert "name" not in config["inputs"]
    assert "name" not in model["inputs"]
    assert config["options"].get("retainOnDelete") is True
    assert config["inputs"]["productionVariants"][0]["variantName"] == "primary"
    assert config["inputs"]["dataCaptureConfig"]["enableCapture"] is True
    assert model["inputs"]["enableNetworkIsolation"] is True


def test_prod_endpoint_is_protected_and_rolls_out_canary_on_several_instances(prod_plan: Plan) -> None:
    endpoint = prod_plan.one(ENDPOINT)
    assert endpoint["options"].get("protect") is True
    routing = endpoint["inputs"]["deploymentConfig"]["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
    assert routing["type"] in ("CANARY", "LINEAR")
    assert prod_plan.one(CONFIG)["inputs"]["productionVariants"][0]["initialInstanceCount"] >= 2
    alarms = endpoint["inputs"]["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
    assert {a["alarmName"] for a in alarms} == set(prod_plan.outputs["rollbackAlarmNames"])


def test_both_stacks_have_monitor_alarms_topic_and_dashboard(any_plan: Plan) -> None:
    assert any_plan.one("mlplatform:monitoring:DriftMonitor")
    # The drift pipeline and its schedule (dev also has the model-quality pipeline: tests/test_monitoring_plans.py).
    pipelines = [p["inputs"]["pipelineName"] for p in any_plan.of_type("aws:sagemaker/pipeline:Pipeline")]
    assert f"{any_plan.one('mlplatform:monitoring:DriftMonitor')['name'].removesuffix('-monitor')}-drift" in pipelines
    assert any_plan.of_type("aws:scheduler/schedule:Schedule")
    assert any_plan.one("aws:sns/topic:Topic")["inputs"]["kmsMasterKeyId"]
    assert any_plan.one("aws:cloudwatch/dashboard:Dashboard")
    assert len(any_plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")) >= 8


@pytest.mark.parametrize("backend", ["model-monitor", "pipeline", "none"])
def test_each_monitor_backend_is_selectable(replan: Callable[..., Plan], backend: str) -> None:
    plan = replan("prod", {"mlplatform:monitorBackend": backend})
    schedules = plan.of_type("aws:sagemaker/monitoringSchedule:MonitoringSchedule")
    pipelines = plan.of_type("aws:sagemaker/pipeline:Pipeline")
    assert (len(schedules), len(pipelines)) == {"model-monitor": (1, 0), "pipeline": (0, 1), "none": (0, 0)}[backend]
    assert plan.one("aws:sns/topic:Topic")


def test_prebuilt_images_build_nothing(replan: Callable[..., Plan]) -> None:
    digest = "@sha256:" + "ab" * 32
    registry = "111122223333.dkr.ecr.us-east-1.amazonaws.com"
    plan = replan(
        "dev",
        {
            "mlplatform:imagesBuild": "false",
            "mlplatform:imagesTraining": f"{registry}/training{digest}",
            "mlplatform:imagesServing": f"{registry}/serving{digest}",
            "mlplatform:imagesMonitoring": f"{registry}/monitoring{digest}",
        },
    )
    assert plan.of_type("docker-build:index:Image") == []
    assert plan.of_type("aws:ecr/repository:Repository") == []
    assert plan.one(MODEL)["inputs"]["primaryContainer"]["image"] == f"{registry}/serving{digest}"
