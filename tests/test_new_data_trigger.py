"""The new-data trigger: a marker object under the training prefix starts the training pipeline.

What is modelled: S3's `Object Created` event as EventBridge receives it (Amazon S3 user guide, "Using
EventBridge" / EventBridge event reference "Amazon Simple Storage Service events": source `aws.s3`, detail-type
`Object Created`, detail.bucket.name, detail.object.key), sent only when the bucket's EventBridge notifications
are on (terraform-provider-aws website/docs/r/s3_bucket_notification.html.markdown: `eventbridge` - Whether to
enable Amazon EventBridge notifications, default false; a bucket has one notification configuration). The rule's
pattern is matched with moto's implementation of EventBridge pattern matching (moto/events/models.py,
EventPattern.matches_event, including `wildcard` with `\\*` escapes) rather than a hand-written matcher. The
target is PutTargets' SageMakerPipelineParameters (the provider's `sagemaker_pipeline_target`).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from components.pipeline import PARAM_TRIGGER, new_data_event_pattern
from components.settings import SettingsError, load_settings
from tests.conftest import plan_with
from tools.mocks import MOCK_ACCOUNT_ID
from tools.plan import Plan, stack_config
from tools.validate import validate_plan

ON = {"mlplatform:lifecycleEnabled": "true", "mlplatform:lifecycleRetrainOnNewData": "true"}


def s3_object_created(bucket: str, key: str) -> Any:  # moto types it as its EventMessageType TypedDict
    """An `Object Created` event as S3 sends it to EventBridge (the documented example's fields)."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": MOCK_ACCOUNT_ID,
        "time": "2026-12-03T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184", "sequencer": "00617F08"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": MOCK_ACCOUNT_ID,
            "source-ip-address": "203.0.113.15",
            "reason": "PutObject",
        },
    }


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_with("dev", ON)


def _rule_pattern(plan: Plan) -> EventPattern:
    return EventPattern.load(plan.named("mlplatform-dev-lifecycle-new-data-rule")["inputs"]["eventPattern"])


def test_only_the_marker_under_the_training_prefix_of_the_data_bucket_starts_a_run(plan: Plan) -> None:
    bucket = plan.named("mlplatform-dev-lifecycle-data-events")["inputs"]["bucket"]
    prefix = "datasets/demo/train/"  # mlplatform:trainingTrainPrefix's default
    pattern = _rule_pattern(plan)
    assert pattern.matches_event(s3_object_created(bucket, f"{prefix}.ready"))
    assert pattern.matches_event(s3_object_created(bucket, f"{prefix}2026-12-03/.ready"))
    # A data file is no start (one run per complete upload, not one per file) ...
    assert not pattern.matches_event(s3_object_created(bucket, f"{prefix}2026-12-03/part-0001.csv"))
    assert not pattern.matches_event(s3_object_created(bucket, f"{prefix}batch.ready"))
    # ... nor a marker elsewhere, nor another bucket's, nor another S3 event.
    assert not pattern.matches_event(s3_object_created(bucket, "datasets/demo/validation/.ready"))
    assert not pattern.matches_event(s3_object_created("another-bucket", f"{prefix}.ready"))
    deleted = s3_object_created(bucket, f"{prefix}.ready") | {"detail-type": "Object Deleted"}
    assert not pattern.matches_event(deleted)


def test_a_literal_star_in_the_prefix_is_not_a_wildcard() -> None:
    pattern = EventPattern.load(json.dumps(new_data_event_pattern("b", "data/*/train/", ".ready")))
    assert pattern.matches_event(s3_object_created("b", "data/*/train/.ready"))
    assert not pattern.matches_event(s3_object_created("b", "data/x/train/.ready"))


def test_bucket_sends_events_to_eventbridge_and_the_target_starts_the_pipeline(plan: Plan) -> None:
    notification = plan.named("mlplatform-dev-lifecycle-data-events")["inputs"]
    assert notification["eventbridge"] is True
    # The data bucket (auto-named from its logical name `mlplatform-dev-data`, as the mocks name it), not the
    # model bucket the pipeline writes to.
    assert notification["bucket"].startswith("mlplatform-dev-data-")
    target = plan.named("mlplatform-dev-lifecycle-new-data-target")["inputs"]
    pipeline = plan.named("mlplatform-dev-lifecycle-pipeline")["inputs"]["pipelineName"]
    assert target["arn"] == f"arn:aws:sagemaker:us-east-1:{MOCK_ACCOUNT_ID}:pipeline/{pipeline}"
    assert target["sagemakerPipelineTarget"]["pipelineParameterLists"] == [
        {"name": PARAM_TRIGGER, "value": "new-data:datasets/demo/train/"}
    ]
    assert target["retryPolicy"]["maximumRetryAttempts"] == 2
    role = plan.named("mlplatform-dev-lifecycle-events-role")["inputs"]
    assert "events.amazonaws.com" in role["assumeRolePolicy"]
    policy = json.loads(plan.named("mlplatform-dev-lifecycle-events-policy")["inputs"]["policy"])
    (statement,) = policy["Statement"]
    assert statement["Action"] == "sagemaker:StartPipelineExecution"
    assert statement["Resource"] == target["arn"]
    assert validate_plan(plan).ok


def test_off_by_default_no_bucket_notification(any_plan: Plan) -> None:
    assert any_plan.of_type("aws:s3/bucketNotification:BucketNotification") == []
    assert (
        plan_with("dev", {"mlplatform:lifecycleEnabled": "true"}).of_type(
            "aws:s3/bucketNotification:BucketNotification"
        )
        == []
    )


def test_the_marker_must_be_a_dot_file_the_channel_reader_skips() -> None:
    raw = copy.deepcopy(stack_config("dev"))
    raw.update({**ON, "mlplatform:lifecycleNewDataMarker": "_READY"})
    with pytest.raises(SettingsError, match=r"mlplatform:lifecycleNewDataMarker"):
        load_settings(raw, "dev")
    raw = copy.deepcopy(stack_config("dev"))
    raw["mlplatform:lifecycleRetrainOnNewData"] = "true"
    with pytest.raises(SettingsError, match=r"mlplatform:lifecycleRetrainOnNewData true .*lifecycleEnabled true"):
        load_settings(raw, "dev")


def test_the_training_channel_reader_skips_the_marker(tmp_path: Any) -> None:
    """The marker lands among the data files SageMaker copies into the channel: the reader must skip it."""
    from training.data import channel_files
    from training.layout import MLRoot

    ml = MLRoot(tmp_path)
    channel = ml.channel("train")
    (channel / "2026-12-03").mkdir(parents=True)
    (channel / "2026-12-03" / "part-1.csv").write_text("a,label\n1,0\n")
    (channel / "2026-12-03" / ".ready").write_text("")
    assert [p.name for p in channel_files(ml, "train")] == ["part-1.csv"]
