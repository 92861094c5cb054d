"""Scale-out: shards analyzed apart and merged give the one-instance result; the container's shard, merge and
model-quality modes.

SageMaker Processing deals the objects of a ShardedByS3Key input out to the instances by key (API reference,
ProcessingS3Input.S3DataDistributionType: "ShardedByS3Key ... each instance gets approximately 1/n of the
number of objects"); every instance finds its name and the cluster's in /opt/ml/config/resourceconfig.json
(developer guide, "Build Your Own Processing Container": current_host, hosts).
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from monitoring import metrics_contract as contract
from monitoring.baseline import write_baseline
from monitoring.capture import LocalSource, TimeWindow
from monitoring.capture_writer import capture_record, write_capture_file
from monitoring.cli import main as cli_main
from monitoring.distance import linf_sketches
from monitoring.entrypoint import main as entrypoint_main
from monitoring.ground_truth import ground_truth_record, write_ground_truth_file
from monitoring.job import analyze, default_baseline_paths, merged_result
from monitoring.kll import KLLSketch
from monitoring.quality import write_quality_baseline
from monitoring.shards import host_index, partial_document, shard_of
from monitoring.statistics import NumericAccumulator, StringAccumulator

HOUR = dt.datetime(2024, 5, 1, 13, tzinfo=dt.UTC)
WINDOW = TimeWindow(HOUR, HOUR + dt.timedelta(hours=1))
N_SHARDS = 4
ROWS = 48_000
"""Large enough that every shard's sketch compacts (k = 2048 holds a few thousand items per level)."""


@pytest.fixture(scope="module")
def window(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(21)
    base = root / "baseline"
    write_baseline(
        pd.DataFrame({"a": rng.normal(size=5000), "b": rng.exponential(size=5000), "c": rng.choice(["x", "y"], 5000)}),
        base,
    )
    a = rng.normal(0.3, 1.0, ROWS).round(5)
    b = rng.exponential(1.2, ROWS).round(5)
    c = rng.choice(["x", "y", "z"], ROWS, p=[0.5, 0.3, 0.2])
    per_file = ROWS // 16
    for f in range(16):
        records = [
            capture_record([[a[i], b[i], c[i]]], HOUR + dt.timedelta(seconds=i % 3599))
            for i in range(f * per_file, (f + 1) * per_file)
        ]
        write_capture_file(root / "capture", records, HOUR, endpoint="ep", name=f"f{f:02d}.jsonl")
    return root, base


def _shard_partials(root: pathlib.Path, base: pathlib.Path) -> list[dict]:
    source = LocalSource(root / "capture")
    files = source.files("")
    stats, constraints = default_baseline_paths(base)
    partials = []
    for index in range(N_SHARDS):
        mine = shard_of(files, index, N_SHARDS)
        shard = root / f"shard-{index}"
        for f in mine:
            (shard / f).parent.mkdir(parents=True, exist_ok=True)
            (shard / f).write_bytes((root / "capture" / f).read_bytes())
        result = analyze(LocalSource(shard), stats, constraints, WINDOW)
        partials.append(
            json.loads(
                json.dumps(
                    partial_document(result.profile, result.counts, result.files_read, f"algo-{index + 1}", WINDOW)
                )
            )
        )
    return partials


def test_merged_shards_equal_one_instance_within_the_sketch_error(window: tuple[pathlib.Path, pathlib.Path]) -> None:
    root, base = window
    stats, constraints = default_baseline_paths(base)
    single = analyze(LocalSource(root / "capture"), stats, constraints, WINDOW)
    merged = merged_result(_shard_partials(root, base), stats, constraints, "shards")

    assert merged.counts.rows_analyzed == single.counts.rows_analyzed == ROWS
    assert merged.window == WINDOW
    for one, many in zip(single.profile.features, merged.profile.features, strict=True):
        assert (one.num_present, one.num_missing) == (many.num_present, many.num_missing)
        if isinstance(one, NumericAccumulator):
            assert isinstance(many, NumericAccumulator)
            assert many.total == pytest.approx(one.total)
            assert many.mean == pytest.approx(one.mean)
            assert many.m2 == pytest.approx(one.m2)
            assert (many.minimum, many.maximum) == (one.minimum, one.maximum)
            assert len(one.sketch.compactors) > 2 and len(many.sketch.compactors) > 2  # compaction happened
            assert many.sketch.count == one.sketch.count == ROWS
            # KLL with k = 2048 keeps ranks within about 1% of the stream; two sketches of one stream, at most twice.
            assert linf_sketches(one.sketch, many.sketch) < 0.02
        else:
            assert isinstance(one, StringAccumulator) and isinstance(many, StringAccumulator)
            assert many.counts == one.counts
    assert [v.to_json() for v in merged.evaluation.violations] == [v.to_json() for v in single.evaluation.violations]
    for name, comparison in single.evaluation.comparisons.items():
        assert merged.evaluation.comparisons[name].distance == pytest.approx(comparison.distance, abs=0.02)


def test_merged_sketch_ranks_stay_within_the_error_bound_of_the_exact_data() -> None:
    rng = np.random.default_rng(5)
    data = rng.lognormal(size=200_000)
    parts = np.array_split(data, N_SHARDS)
    merged = KLLSketch()
    for part in parts:
        shard = KLLSketch()
        shard.update(part)
        merged.merge(shard)
    probes = np.quantile(data, np.linspace(0.01, 0.99, 99))
    exact = np.searchsorted(np.sort(data), probes, side="right") / data.size
    assert np.max(np.abs(merged.rank(probes) / data.size - exact)) < 0.01


def test_shards_deal_files_out_by_key_without_overlap() -> None:
    files = [f"ep/v/2024/05/01/13/{i:03d}.jsonl" for i in range(10)]
    shards = [shard_of(files, i, 3) for i in range(3)]
    assert sorted(f for s in shards for f in s) == sorted(files)
    assert [len(s) for s in shards] == [4, 3, 3]
    assert host_index({"current_host": "algo-2", "hosts": ["algo-1", "algo-2", "algo-3"]}) == (1, 3)
    with pytest.raises(ValueError, match="current_host"):
        host_index({"current_host": "algo-9", "hosts": ["algo-1"]})


def test_cli_merge_refuses_a_folder_without_partials(tmp_path: pathlib.Path, capsys) -> None:
    (tmp_path / "p").mkdir()
    code = cli_main(
        ["merge", "--partials", str(tmp_path / "p"), "--baseline", str(tmp_path), "--output", str(tmp_path)]
    )
    assert code == 2
    assert "no partial-*.json files" in capsys.readouterr().err


def test_container_shard_then_merge_modes_write_the_one_instance_outputs(
    window: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    root, base = window
    common = {
        "baseline_statistics": str(base / "statistics.json"),
        "baseline_constraints": str(base / "constraints.json"),
        "start_time": "2024-05-01T13:00:00Z",
        "end_time": "2024-05-01T14:00:00Z",
        "sagemaker_endpoint_name": "ep",
        "sagemaker_monitoring_schedule_name": "ep-drift",
    }
    partials = tmp_path / "partials"
    for index in range(2):
        opt_ml = tmp_path / f"opt-ml-{index}"
        (opt_ml / "config").mkdir(parents=True)
        (opt_ml / "config" / "resourceconfig.json").write_text(
            json.dumps({"current_host": f"algo-{index + 1}", "hosts": ["algo-1", "algo-2"]})
        )
        shard = tmp_path / f"in-{index}"
        for f in shard_of(LocalSource(root / "capture").files(""), index, 2):
            (shard / f).parent.mkdir(parents=True, exist_ok=True)
            (shard / f).write_bytes((root / "capture" / f).read_bytes())
        env = {**common, "MLPLATFORM_MODE": "shard", "dataset_source": str(shard), "output_path": str(partials),
               "MLPLATFORM_OPT_ML": str(opt_ml)}  # fmt: skip
        assert entrypoint_main(env) == 0
    assert sorted(p.name for p in partials.iterdir()) == ["partial-algo-1.json", "partial-algo-2.json"]
    out = tmp_path / "out"
    env = {**common, "MLPLATFORM_MODE": "merge", "dataset_source": str(partials), "output_path": str(out),
           "publish_cloudwatch_metrics": "Enabled", "MLPLATFORM_OPT_ML": str(tmp_path / "opt-ml")}  # fmt: skip
    assert entrypoint_main(env) == 0
    stats = json.loads((out / "statistics.json").read_text())
    assert stats["dataset"]["item_count"] == ROWS
    lines = (tmp_path / "opt-ml" / "output" / "metrics" / "cloudwatch" / "cloudwatch_metrics.jsonl").read_text()
    records = [json.loads(line) for line in lines.splitlines()]
    analyzed = next(r for r in records if r["MetricName"] == contract.RECORDS_ANALYZED_METRIC)
    assert analyzed["Value"] == ROWS and analyzed["Timestamp"] == "2024-05-01T14:00:00Z"


def test_container_model_quality_mode_uses_the_label_delay_and_publishes_quality_metrics(
    tmp_path: pathlib.Path,
) -> None:
    """The pipeline passes its scheduled time as end_time; with a 2-hour label delay the window is 10:00-11:00
    and labels uploaded from 13:00 (the scheduled hour) on are late."""
    base = tmp_path / "baseline"
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 2, 400)
    write_quality_baseline(truth.tolist(), truth.tolist(), base, scores=truth.astype(float).tolist())
    window_start = dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    records = [
        capture_record(
            [[float(i)]],
            window_start + dt.timedelta(seconds=i),
            output=f"{truth[i]},{1 - truth[i]},{truth[i]}",
            event_id=f"e{i}",
        )
        for i in range(400)
    ]
    write_capture_file(tmp_path / "capture", records, window_start, endpoint="ep", name="c.jsonl")
    on_time = [ground_truth_record(f"e{i}", int(truth[i])) for i in range(300)]
    late = [ground_truth_record(f"e{i}", int(truth[i])) for i in range(300, 350)]
    write_ground_truth_file(tmp_path / "gt", on_time, dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC))
    write_ground_truth_file(tmp_path / "gt", late, dt.datetime(2024, 5, 1, 13, 5, tzinfo=dt.UTC))
    out = tmp_path / "out"
    env = {
        "MLPLATFORM_MODE": "model-quality",
        "dataset_source": str(tmp_path / "capture"),
        "ground_truth_source": str(tmp_path / "gt"),
        "output_path": str(out),
        "baseline_constraints": str(base / "model_quality" / "constraints.json"),
        "end_time": "2024-05-01T13:00:00Z",
        "MLPLATFORM_WINDOW_SECONDS": "3600",
        "MLPLATFORM_LABEL_DELAY_SECONDS": "7200",
        "publish_cloudwatch_metrics": "Enabled",
        "sagemaker_endpoint_name": "ep",
        "sagemaker_monitoring_schedule_name": "ep-model-quality",
        "MLPLATFORM_OPT_ML": str(tmp_path / "opt-ml"),
    }
    assert entrypoint_main(env) == 0
    counts = json.loads((out / "statistics.json").read_text())["mlplatform_counts"]
    assert (counts["predictions"], counts["labeled"], counts["late_labels"], counts["unlabeled"]) == (400, 300, 50, 100)
    message = (tmp_path / "opt-ml" / "output" / "message").read_text()
    assert message.startswith("Completed: no violations")
    metrics = [
        json.loads(line)
        for line in (tmp_path / "opt-ml" / "output/metrics/cloudwatch/cloudwatch_metrics.jsonl")
        .read_text()
        .splitlines()
    ]
    by_name = {m["MetricName"]: m for m in metrics}
    assert by_name["accuracy"]["Value"] == 1.0
    assert by_name[contract.LATE_LABELS_METRIC]["Value"] == 50
    assert by_name["accuracy"]["Dimensions"] == [
        {"Name": "Endpoint", "Value": "ep"},
        {"Name": "MonitoringSchedule", "Value": "ep-model-quality"},
    ]


def test_container_model_quality_mode_names_a_missing_ground_truth_setting(tmp_path: pathlib.Path) -> None:
    env = {"MLPLATFORM_MODE": "model-quality", "dataset_source": "x", "output_path": str(tmp_path),
           "baseline_constraints": "c.json", "MLPLATFORM_OPT_ML": str(tmp_path)}  # fmt: skip
    assert entrypoint_main(env) == 2
    assert "ground_truth_source is required" in (tmp_path / "output" / "failure").read_text()
