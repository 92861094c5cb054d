"""Generate the Grafana dashboard of the serving container's /metrics and the Prometheus scrape files.

`python -m tools.grafana --write` writes, under docs/grafana/:

- `serving-dashboard.json`: importable Grafana dashboard (request rate, errors, latency percentiles per route,
  rows per request, workers ready, worker restarts), built with Grafana Labs' foundation SDK, whose types are
  generated from Grafana's dashboard schema; the tests decode the file with the same SDK and check that every
  metric it queries is one the serving server exports.
- `servicemonitor.yaml` and `prometheus-scrape.yaml`: the Prometheus operator's ServiceMonitor and a plain
  scrape config for the Kubernetes target (components/prometheus.py).

Without `--write`, checks that the committed files are current (exit 1 when not).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from components import prometheus as prom

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "grafana"
DASHBOARD_FILE = "serving-dashboard.json"
SERVICE_MONITOR_FILE = "servicemonitor.yaml"
SCRAPE_FILE = "prometheus-scrape.yaml"
DASHBOARD_UID = "mlplatform-serving"

REQUESTS = "mlplatform_serving_requests_total"
DURATION = "mlplatform_serving_request_duration_seconds"
ROWS = "mlplatform_serving_rows_total"
WORKERS_READY = "mlplatform_serving_workers_ready"
WORKERS = "mlplatform_serving_workers"
WORKER_RESTARTS = "mlplatform_serving_worker_restarts_total"
"""serving/metrics.py METRIC_FAMILIES: counted by the parent process, labelled by reason."""
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SELECTOR = 'namespace=~"$namespace", track=~"$track"'


def _query(ref: str, expr: str, legend: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().ref_id(ref).expr(expr).legend_format(legend).datasource(DATASOURCE)


def _panel(title: str, unit: str, x: int, y: int, *queries: prometheus.Dataquery, description: str = "") -> Any:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .grid_pos(_grid(x, y))
        .line_width(1)
        .fill_opacity(10)
    )
    for query in queries:
        panel = panel.with_target(query)
    return panel


def _grid(x: int, y: int) -> Any:
    from grafana_foundation_sdk.models.dashboard import GridPos

    return GridPos(h=8, w=12, x=x, y=y)


def build_dashboard() -> dict[str, Any]:
    """The dashboard as a JSON-ready dict."""
    from grafana_foundation_sdk.builders.dashboard import DatasourceVariable, QueryVariable

    rate = f"sum by (path) (rate({REQUESTS}{{{SELECTOR}}}[$__rate_interval]))"
    errors = f'sum by (path, status) (rate({REQUESTS}{{{SELECTOR}, status=~"5..|other"}}[$__rate_interval]))'
    client_errors = f'sum by (path, status) (rate({REQUESTS}{{{SELECTOR}, status=~"4.."}}[$__rate_interval]))'

    def quantile(q: str) -> str:
        return (
            f"histogram_quantile({q}, sum by (path, le) "
            f'(rate({DURATION}_bucket{{{SELECTOR}, path!="/metrics"}}[$__rate_interval])))'
        )

    rows_per_request = (
        f"sum(rate({ROWS}{{{SELECTOR}}}[$__rate_interval])) / "
        f'clamp_min(sum(rate({REQUESTS}{{{SELECTOR}, path="/invocations", status="200"}}[$__rate_interval])), 1e-9)'
    )
    board = (
        dashboard.Dashboard("mlplatform serving")
        .uid(DASHBOARD_UID)
        .tags(["mlplatform", "serving"])
        .description("The serving container's /metrics (Prometheus text format), per route and track.")
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("utc")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(
            QueryVariable("namespace")
            .label("namespace")
            .datasource(DATASOURCE)
            .query(f"label_values({REQUESTS}, namespace)")
            .include_all(True)
            .multi(True)
        )
        .with_variable(
            QueryVariable("track")
            .label("track (stable/canary)")
            .datasource(DATASOURCE)
            .query(f"label_values({REQUESTS}, track)")
            .include_all(True)
            .multi(True)
        )
        .with_panel(_panel("Request rate by route", "reqps", 0, 0, _query("A", rate, "{{path}}")))
        .with_panel(
            _panel(
                "Errors by route and status",
                "reqps",
                12,
                0,
                _query("A", errors, "{{path}} {{status}}"),
                _query("B", client_errors, "{{path}} {{status}}"),
                description="5XX (and unlisted statuses) and 4XX answers per second.",
            )
        )
        .with_panel(
            _panel(
                "Latency percentiles by route",
                "s",
                0,
                8,
                _query("A", quantile("0.5"), "p50 {{path}}"),
                _query("B", quantile("0.9"), "p90 {{path}}"),
                _query("C", quantile("0.99"), "p99 {{path}}"),
                description="From the request-duration histogram; /metrics itself is left out.",
            )
        )
        .with_panel(
            _panel(
                "Rows per request (/invocations)",
                "short",
                12,
                8,
                _query("A", rows_per_request, "rows per successful request"),
                description="Rows scored per successful /invocations request: batch size as clients send it.",
            )
        )
        .with_panel(
            _panel(
                "Workers ready / configured",
                "short",
                0,
                16,
                _query("A", f"sum({WORKERS_READY}{{{SELECTOR}}})", "ready"),
                _query("B", f"sum({WORKERS}{{{SELECTOR}}})", "configured"),
            )
        )
        .with_panel(
            _panel(
                "Worker restarts",
                "short",
                12,
                16,
                _query("A", f"sum by (pod) (increase({WORKER_RESTARTS}{{{SELECTOR}}}[$__rate_interval]))", "{{pod}}"),
                description="Worker processes the supervisor restarted (a crash or a kill), per pod.",
            )
        )
    )
    return json.loads(JSONEncoder(sort_keys=True, indent=2).encode(board.build()))


def rendered() -> dict[str, str]:
    """File name -> content of every generated file."""
    manifests = {
        SERVICE_MONITOR_FILE: prom.service_monitor(namespace="mlplatform", labels={"release": "kube-prometheus-stack"}),
        SCRAPE_FILE: prom.scrape_config(namespace="mlplatform"),
    }
    header = "# Generated by `python -m tools.grafana --write` from components/prometheus.py; do not edit.\n"
    out = {DASHBOARD_FILE: json.dumps(build_dashboard(), indent=2, sort_keys=True) + "\n"}
    for name, doc in manifests.items():
        out[name] = header + yaml.safe_dump(doc, sort_keys=False)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.grafana", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the files (default: check they are current)")
    args = parser.parse_args(argv)
    stale = []
    for name, content in rendered().items():
        path = OUT / name
        if args.write:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        elif not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append(name)
    if stale:
        print(f"docs/grafana is out of date ({', '.join(stale)}): run python -m tools.grafana --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
