"""The Grafana dashboard (docs/grafana/) is a valid dashboard, current with its generator, and queries only
metrics the serving server really exports; the Prometheus scrape manifests select the model service.

Schema: the dashboard is decoded with Grafana Labs' foundation SDK (grafana-foundation-sdk), whose models are
generated from Grafana's dashboard schema (the `dashboard` kind); decoding and re-encoding gives the same file.
Metric names: Prometheus' text exposition format declares every family with a `# TYPE name kind` line, and a
histogram family's series are `name_bucket`, `name_sum` and `name_count` (Prometheus docs, "Exposition
formats"; "Metric types").
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from components import prometheus as prom
from components.kubernetes import SCRAPE_LABEL, SELECTOR_LABEL, TRACK_LABEL
from tests.serving_model_fixture import write_model_dir
from tests.serving_server_process import ServerProcess
from tools import grafana

_METRIC = re.compile(r"\bmlplatform_[a-z_]+")


@pytest.fixture(scope="module")
def dashboard_doc() -> dict:
    return json.loads((grafana.OUT / grafana.DASHBOARD_FILE).read_text())


@pytest.fixture(scope="module")
def exported_series(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Series names the real server renders on GET /metrics."""
    model_dir = write_model_dir(tmp_path_factory.mktemp("model"))
    server = ServerProcess(model_dir, tmp_path_factory.mktemp("log") / "server.log", workers=1)
    try:
        server.wait_until(200)
        server.request("POST", "/invocations", body=b"1,2,3\n", headers={"Content-Type": "text/csv"})
        status, _, body = server.request("GET", "/metrics")
        assert status == 200
    finally:
        server.terminate()
    names: set[str] = set()
    for line in body.decode().splitlines():
        match = re.match(r"# TYPE (\S+) (\S+)", line)
        if match:
            name, kind = match.groups()
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
    return names


def _queried(doc: dict) -> set[str]:
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [v.get("query", "") for v in doc["templating"]["list"] if isinstance(v.get("query"), str)]
    return {m for e in exprs for m in _METRIC.findall(e)}


def test_dashboard_decodes_with_grafanas_schema_models_and_round_trips(dashboard_doc: dict) -> None:
    decoded = Dashboard.from_json(dashboard_doc)
    assert decoded.title == "mlplatform serving" and decoded.uid == grafana.DASHBOARD_UID
    assert json.loads(JSONEncoder(sort_keys=True).encode(decoded)) == dashboard_doc
    titles = [p["title"] for p in dashboard_doc["panels"]]
    assert titles == [
        "Request rate by route",
        "Errors by route and status",
        "Latency percentiles by route",
        "Rows per request (/invocations)",
        "Workers ready / configured",
        "Worker restarts",
    ]


def test_dashboard_files_are_current_with_their_generator() -> None:
    assert grafana.main([]) == 0


def test_every_queried_metric_is_exported_by_the_serving_server(dashboard_doc: dict, exported_series: set[str]) -> None:
    queried = _queried(dashboard_doc)
    assert {"mlplatform_serving_requests_total", "mlplatform_serving_request_duration_seconds_bucket"} <= queried
    assert grafana.WORKER_RESTARTS in queried
    assert queried - exported_series == set()


def test_a_misspelled_metric_would_be_caught(dashboard_doc: dict, exported_series: set[str]) -> None:
    doc = json.loads(json.dumps(dashboard_doc))
    doc["panels"][0]["targets"][0]["expr"] = "rate(mlplatform_serving_request_total[5m])"
    assert "mlplatform_serving_request_total" in _queried(doc) - exported_series


def test_service_monitor_selects_the_model_service_and_keeps_the_track_label() -> None:
    doc = yaml.safe_load((grafana.OUT / grafana.SERVICE_MONITOR_FILE).read_text())
    assert doc == prom.service_monitor("mlplatform", {"release": "kube-prometheus-stack"})
    # Only the Services that cover every pod once carry the scrape label (weighted canaries add per-track
    # Services over the same pods; selecting them all would double every rate the adapter computes).
    assert doc["spec"]["selector"]["matchLabels"] == {SELECTOR_LABEL: "mlplatform", SCRAPE_LABEL: "true"}
    assert doc["spec"]["podTargetLabels"] == [TRACK_LABEL]
    assert doc["spec"]["endpoints"][0]["path"] == "/metrics"


def test_plain_scrape_config_keeps_only_the_model_servers_http_port() -> None:
    (job,) = prom.scrape_config("mlplatform")["scrape_configs"]
    keep = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keep == {
        ("__meta_kubernetes_service_label_app_kubernetes_io_name",): "mlplatform-serving",
        ("__meta_kubernetes_endpoint_port_name",): "http",
        ("__meta_kubernetes_service_label_mlplatform_metrics",): "true",
    }
    assert Path(grafana.OUT / grafana.SCRAPE_FILE).read_text().startswith("# Generated by")
