"""`make local` end to end, reduced: `python -m tools.local --epochs 2 --rows 40` into a temporary folder.

One real run (demo data, training, a served model, replayed traffic with captures, the monitor on both phases,
the dev plan) is shared by the tests that read its summary, captures and report; a second run points the
lifecycle at a corrupt model directory and must fail naming the serving stage. The screenshot test renders
the report with headless chromium: skipped only where chromium is absent outside CI (CI=true fails instead).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tools.local import replay
from tools.local.lifecycle import Options, free_port, stage_names, window_bounds
from tools.local.runners import LocalRunner, port_is_closed, wait_for_ping

REPO = Path(__file__).resolve().parent.parent
EPOCHS = 2
ROWS = 40
FEATURES = 30  # the breast cancer demo's numeric features
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

pytestmark = pytest.mark.slow


@dataclass
class Run:
    out: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.out / "summary.json").read_text())


def run_local(out: Path, *args: str, timeout: float = 600) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.local", "--out", str(out), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(out, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("local")
    run = run_local(out, "--epochs", str(EPOCHS), "--rows", str(ROWS), "--workers", "1", "--concurrency", "2")
    assert run.returncode == 0, f"make local failed:\n{run.stdout}\n{run.stderr}"
    return run


def test_every_stage_prints_one_progress_line_in_order(lifecycle: Run) -> None:
    names = stage_names(Options())
    lines = [line for line in lifecycle.stdout.splitlines() if line.startswith("==> [")]
    assert [re.match(r"==> \[(\d+)/(\d+)\] (\w+):", line).groups() for line in lines] == [  # type: ignore[union-attr]
        (str(i), str(len(names)), name) for i, name in enumerate(names, 1)
    ]


def test_first_run_validates_gates_without_champion_and_registers_pending(lifecycle: Run) -> None:
    lc = lifecycle.summary["lifecycle"]
    assert lc["champion"] is None
    assert lc["validation"]["passed"] is True
    assert lc["validation"]["baseline"] is None  # nothing approved yet: file and row checks only
    assert lc["gate"]["decision"] == "pass"
    assert lc["gate"]["champion"] is None
    assert "no approved champion" in lc["gate"]["note"]
    assert lc["register"] == {
        "registered": True,
        "group": "mlplatform-local",
        "version": 1,
        "status": "PendingManualApproval",
        "mlflow_run_id": lc["gate"]["mlflow_run_id"],
        "approve": "python -m tools.local.registry approve --version 1",
    }
    record = json.loads((lifecycle.out / "registry" / "mlplatform-local" / "1" / "package.json").read_text())
    assert record["ModelApprovalStatus"] == "PendingManualApproval"
    manifest = json.loads((lifecycle.out / "ml" / "model" / "manifest.json").read_text())
    assert record["CustomerMetadataProperties"]["data_fingerprint"] == manifest["data_fingerprint"]
    assert "gate     pass" in lifecycle.stdout


def test_evaluate_records_an_mlflow_run_that_the_package_and_report_name(
    lifecycle: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local MLflow file store (mlflow's FileStore, read back with MlflowClient) holds the candidate's run;
    the registry's package keeps its id in CustomerMetadataProperties, as the pipeline's Register step does."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3 refuses a file store without it
    run_id = lifecycle.summary["lifecycle"]["gate"]["mlflow_run_id"]
    assert run_id and run_id != "none"
    record = json.loads((lifecycle.out / "registry" / "mlplatform-local" / "1" / "package.json").read_text())
    assert record["CustomerMetadataProperties"]["mlflow_run_id"] == run_id
    run = MlflowClient(tracking_uri=(lifecycle.out / "mlruns").as_uri()).get_run(run_id)
    assert run.info.run_name == "make-local"
    assert run.data.params["epochs"] == str(EPOCHS)
    assert run.data.tags["mlplatform.gate_decision"] == "pass"
    assert run.data.metrics["gate_candidate_auc"] == pytest.approx(
        lifecycle.summary["lifecycle"]["gate"]["candidate"]["auc"]
    )
    assert f"MLflow run <code>{run_id}</code>" in (lifecycle.out / "report.html").read_text()
    assert f"MLflow run {run_id}" in lifecycle.stdout


def test_approved_version_is_the_next_runs_champion(lifecycle: Run, tmp_path: Path) -> None:
    out = tmp_path / "second"
    shutil.copytree(lifecycle.out / "registry", out / "registry")
    approve = [
        sys.executable,
        "-m",
        "tools.local.registry",
        "approve",
        "--version",
        "1",
        "--root",
        str(out / "registry"),
    ]
    subprocess.run(approve, cwd=REPO, check=True, capture_output=True, timeout=60)
    run = run_local(out, "--epochs", str(EPOCHS), "--rows", str(ROWS), "--workers", "1", "--concurrency", "2")
    assert run.returncode == 0, run.stderr
    lc = run.summary["lifecycle"]
    assert lc["champion"]["version"] == 1
    assert lc["validation"]["baseline"].endswith("champion/baseline")
    assert lc["gate"]["champion_version"] == 1
    assert lc["gate"]["champion"]["auc"] == pytest.approx(lifecycle.summary["lifecycle"]["gate"]["candidate"]["auc"])
    assert {c["check"] for c in lc["gate"]["checks"]} >= {"auc_drop", "accuracy_drop", "log_loss_increase"}
    # Same data, seed and epochs: the candidate equals the champion, within every tolerance.
    assert lc["gate"]["decision"] == "pass"
    assert lc["register"]["version"] == 2
    assert "vs champion v1" in run.stdout


def test_normal_phase_has_no_violation(lifecycle: Run) -> None:
    normal = lifecycle.summary["monitor"]["normal"]
    assert normal["violation_count"] == 0
    assert normal["violated_features"] == []
    assert normal["rows_analyzed"] == ROWS
    violations = json.loads((lifecycle.out / "monitor" / "normal" / "constraint_violations.json").read_text())
    assert violations == {"violations": []}


def test_drifted_phase_flags_exactly_the_shifted_features(lifecycle: Run) -> None:
    drifted = lifecycle.summary["monitor"]["drifted"]
    assert drifted["violated_features"] == sorted(replay.SHIFTED_FEATURES)
    assert drifted["rows_analyzed"] == ROWS
    violations = json.loads((lifecycle.out / "monitor" / "drifted" / "constraint_violations.json").read_text())
    kinds = {(v["feature_name"], v["constraint_check_type"]) for v in violations["violations"]}
    assert kinds == {(name, "baseline_drift_check") for name in replay.SHIFTED_FEATURES}
    assert lifecycle.summary["as_expected"] is True


def test_summary_holds_model_metrics_latency_and_plan(lifecycle: Run) -> None:
    summary = lifecycle.summary
    evaluation = json.loads((lifecycle.out / "ml" / "model" / "evaluation.json").read_text())
    assert summary["model"]["evaluation"]["fp32"] == evaluation["fp32"]
    assert summary["model"]["epochs_run"] == EPOCHS
    for phase in replay.PHASES:
        figures = summary["replay"]["phases"][phase]
        assert figures["requests"] == ROWS and figures["errors"] == 0
        assert 0 < figures["latency_ms"]["p50"] <= figures["latency_ms"]["p99"]
        assert figures["throughput_rps"] > 0
        assert sum(figures["predicted_labels"].values()) == ROWS
        assert set(figures["predicted_labels"]) <= {"benign", "malignant"}
    plan = json.loads((lifecycle.out / "plan" / "dev.json").read_text())
    assert summary["plan"]["resources"] == len(plan["resources"]) > 0
    assert sum(summary["plan"]["by_type"].values()) == len(plan["resources"])
    assert summary["plan"]["by_type"]["aws:sagemaker/endpoint:Endpoint"] == 1
    assert "summary (" in lifecycle.stdout and "report" in lifecycle.stdout


def test_captures_follow_sagemaker_layout_without_the_label(lifecycle: Run) -> None:
    held_out = list(csv.DictReader((lifecycle.out / "ml" / "input" / "data" / "validation" / "validation.csv").open()))
    manifest = json.loads((lifecycle.out / "ml" / "model" / "manifest.json").read_text())
    names = [f["name"] for f in manifest["features"]]
    std = {f["name"]: f["std"] for f in manifest["features"]}
    rows: dict[str, list[list[str]]] = {}
    for phase in replay.PHASES:
        root = lifecycle.out / "capture" / phase
        files = replay.capture_listing(root)
        assert files, f"no capture for {phase}"
        pattern = rf"^{replay.ENDPOINT_NAME}/{replay.VARIANT_NAME}/\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/[^/]+\.jsonl$"
        assert all(re.match(pattern, f) for f in files), files
        records = [json.loads(line) for f in files for line in (root / f).read_text().splitlines()]
        assert len(records) == ROWS
        for record in records:
            assert record["captureData"]["endpointInput"]["observedContentType"] == "text/csv"
            assert record["captureData"]["endpointInput"]["encoding"] == "CSV"
            assert record["captureData"]["endpointOutput"]["data"].split(",")[0] in {"benign", "malignant"}
            assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", record["eventMetadata"]["inferenceTime"])
        rows[phase] = sorted(next(csv.reader([r["captureData"]["endpointInput"]["data"]])) for r in records)
    expected = sorted([row[n] for n in names] for row in held_out[:ROWS])
    assert rows["normal"] == expected
    assert all(len(row) == FEATURES for row in rows["normal"])  # the label column is never sent
    shifted = {names.index(n) for n in replay.SHIFTED_FEATURES}
    normal_by_rest = {tuple(v for i, v in enumerate(row) if i not in shifted): row for row in rows["normal"]}
    for row in rows["drifted"]:
        original = normal_by_rest[tuple(v for i, v in enumerate(row) if i not in shifted)]
        for i in shifted:
            assert float(row[i]) == pytest.approx(float(original[i]) + 3 * std[names[i]], abs=1e-5)


def test_report_is_self_contained_with_a_plot_per_feature_per_phase(lifecycle: Run) -> None:
    page = (lifecycle.out / "report.html").read_text()
    assert lifecycle.summary["report"].endswith("report.html")
    assert "<script" not in page and "<link" not in page and not re.search(r'src="(?!data:)', page)
    for phase in replay.PHASES:
        section = page.split(f'id="phase-{phase}"', 1)[1].split('<section class="phase"', 1)[0]
        features = re.findall(rf'<section class="feature (?:ok|drifted)" id="{phase}-feature-([^"]+)"', section)
        assert len(features) == FEATURES
        assert section.count('class="plot"') == FEATURES  # one distribution plot (inline <svg>) per feature
    drifted = page.split('id="phase-drifted"', 1)[1]
    assert sorted(re.findall(r'<section class="feature drifted" id="drifted-feature-([^"]+)"', drifted)) == sorted(
        replay.SHIFTED_FEATURES
    )


def test_server_is_stopped_after_the_run(lifecycle: Run) -> None:
    serving = lifecycle.summary["serving"]
    assert serving["stopped"] is True
    assert port_is_closed(serving["port"])


def test_corrupt_model_fails_the_serving_stage_by_name(tmp_path: Path) -> None:
    model = tmp_path / "corrupt-model"
    (model / "baseline").mkdir(parents=True)
    (model / "manifest.json").write_text("{ not json")
    (model / "model.onnx").write_bytes(b"not an onnx graph")
    run = run_local(tmp_path / "out", "--model-dir", str(model), "--rows", str(ROWS))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "local: stage 'serving' failed:" in run.stderr
    assert run.summary["failed_stage"] == "serving"
    port = int(re.search(r"on 127\.0\.0\.1:(\d+)", run.stdout).group(1))  # type: ignore[union-attr]
    assert port_is_closed(port)


def test_interrupt_while_serving_stops_the_server_process_group(lifecycle: Run, tmp_path: Path) -> None:
    """What Ctrl-C or SIGTERM does mid-run: the exception unwinds through the runner, which ends the group."""
    port = free_port()
    log = tmp_path / "serving.log"
    pid = 0
    # The interrupt must come from inside the server's scope, after it answered.
    with pytest.raises(KeyboardInterrupt), LocalRunner().serve(lifecycle.out / "ml" / "model", port, 2, log) as proc:  # noqa: PT012
        pid = proc.pid
        wait_for_ping(proc, port, 120, log)
        raise KeyboardInterrupt
    assert port_is_closed(port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # signal 0: does any process of the group still exist?


def test_invalid_options_are_refused_with_what_is_allowed(tmp_path: Path) -> None:
    run = run_local(tmp_path, "--epochs", "0")
    assert run.returncode == 2 and "--epochs 0: allowed 1..100000" in run.stderr
    run = run_local(tmp_path, "--rows", "5", "--model-dir", str(tmp_path / "missing"))
    assert run.returncode == 2 and "is not a directory" in run.stderr


def test_shift_refuses_features_the_model_does_not_have() -> None:
    features = [replay.Feature("a", True, 2.0), replay.Feature("colour", False, 0.0)]
    assert replay.shift_rows([["1.5", "red"]], features, ["a"], 3.0) == [["7.5", "red"]]
    with pytest.raises(replay.ReplayError, match=r"'colour' is not a numeric feature of the model; allowed: \['a'\]"):
        replay.shift_rows([["1.5", "red"]], features, ["colour"], 3.0)
    with pytest.raises(replay.ReplayError, match="at least 20 rows"):
        replay.held_out_rows(Path("unused.csv"), features, "label", 5)


def test_percentile_is_a_measured_value_and_windows_cover_the_phase(lifecycle: Run) -> None:
    assert replay.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert replay.percentile([float(i) for i in range(1, 115)], 99) == 113.0
    window = lifecycle.summary["monitor"]["normal"]["window"]
    phase = lifecycle.summary["replay"]["phases"]["normal"]
    assert window["start"] <= phase["started"][:19] + "Z" and phase["ended"][:19] + "Z" < window["end"]
    started = dt.datetime(2026, 1, 1, 12, 59, 59, 900_000, tzinfo=dt.UTC)
    result = replay.PhaseResult("p", 1, 0, 0.2, [1.0], {}, Path(), [], started, started + dt.timedelta(seconds=0.2))
    assert window_bounds(result) == ("2026-01-01T12:59:59Z", "2026-01-01T13:00:01Z")


@pytest.mark.containers
def test_containers_option_runs_the_same_lifecycle_in_the_images(tmp_path: Path) -> None:
    """`make local CONTAINERS=1`: training, serving and the monitor run in the buildah images."""
    from tests.containers.helpers import tool_gate

    verdict = tool_gate(os.environ, shutil.which, os.geteuid())
    if verdict is not None:
        action, message = verdict
        if action == "skip":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    run = run_local(tmp_path, "--containers", "--epochs", str(EPOCHS), "--rows", str(ROWS), timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = run.summary
    assert summary["mode"] == "containers"
    assert set(summary["images"]["images"]) == {"base_image", "training", "serving", "monitoring"}
    assert summary["monitor"]["normal"]["violated_features"] == []
    assert summary["monitor"]["drifted"]["violated_features"] == sorted(replay.SHIFTED_FEATURES)
    assert (
        "buildah run localhost/mlplatform-monitoring:local" in (tmp_path / "logs" / "monitor-drifted.log").read_text()
    )
    assert port_is_closed(summary["serving"]["port"])


# --- the report in a browser -------------------------------------------------------------------------------


def chromium_binary() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and raw rows of an 8-bit RGB/RGBA non-interlaced PNG (what chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - bpp] if x >= bpp else 0
            up = previous[x]
            corner = previous[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
        previous = line
    return width, height, rows


def test_report_renders_with_plots_in_headless_chromium(lifecycle: Run) -> None:
    browser = chromium_binary()
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; CI must install it (apt-get install -y chromium)", pytrace=False)
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI fails here instead")
    png = lifecycle.out / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--screenshot={png}",
            "--window-size=1280,2000",
            (lifecycle.out / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    width, height, rows = decode_png(png.read_bytes())
    assert (width, height) == (1280, 2000)
    colours = Counter(row[i : i + 3] for row in rows for i in range(0, len(row), 3))
    # The plots' bars are drawn in the report's baseline and current colours: rendered plots show both.
    baseline_pixels = colours[bytes.fromhex("4c78a8")]
    current_pixels = colours[bytes.fromhex("f58518")]
    assert baseline_pixels > 2000 and current_pixels > 2000, (baseline_pixels, current_pixels)


def test_ground_truth_phase_flags_concept_drift_by_quality_not_by_drift(lifecycle: Run) -> None:
    """The concept scenario keeps the normal phase's inputs (no drift violation there) and flips every 5th
    label of each site: model quality is flagged, bias is not; the true labels give no violation."""
    quality = lifecycle.summary["quality"]
    assert quality["true"]["quality_violations"] == [] and quality["true"]["bias_groups"] == []
    assert "accuracy" in quality["concept"]["quality_violations"]
    assert quality["concept"]["bias_groups"] == []
    assert lifecycle.summary["monitor"]["normal"]["violation_count"] == 0
    assert quality["true"]["labeled"] == ROWS
    # 40 rows are too few for the planted bias (one relabelled row moves every site): skipped, and said so.
    assert "needs at least" in quality["skipped"]
    assert (lifecycle.out / "quality" / "concept" / "constraint_violations.json").is_file()
