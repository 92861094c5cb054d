"""Prometheus scraping of the Kubernetes serving target: the operator's ServiceMonitor and a plain scrape config.

Pure functions returning manifests (no resources): `KubernetesModelService` creates the ServiceMonitor from
`service_monitor(...)` when `mlplatform:kubernetesServiceMonitor` is on; clusters without the Prometheus
operator use `scrape_config(...)` in their prometheus.yml. Both keep the pod's `track` label (stable/canary)
on every series, which the Grafana dashboard (docs/grafana/) filters by.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.kubernetes import SCRAPE_LABEL, SELECTOR_LABEL, SERVICE_NAME, TRACK_LABEL

SCRAPE_INTERVAL = "30s"
SCRAPE_TIMEOUT = "10s"
METRICS_PATH = "/metrics"
PORT_NAME = "http"
APP_NAME = "mlplatform-serving"


def service_monitor(namespace: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Prometheus operator's ServiceMonitor (monitoring.coreos.com/v1) for the model service in `namespace`.

    `endpoints[].port` names the Service's port, `podTargetLabels` copies the pod's track label onto the series
    (prometheus-operator API reference, ServiceMonitorSpec and Endpoint). It selects only the Services carrying
    the scrape label, which together cover every pod once (with weighted canaries the shared Service and the
    per-track ones select the same pods; scraping both would double every rate). `KubernetesModelService`
    creates exactly this spec."""
    common = {"app.kubernetes.io/name": APP_NAME, SELECTOR_LABEL: namespace}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": SERVICE_NAME, "namespace": namespace, "labels": {**common, **dict(labels or {})}},
        "spec": {
            "selector": {"matchLabels": {SELECTOR_LABEL: namespace, SCRAPE_LABEL: "true"}},
            "namespaceSelector": {"matchNames": [namespace]},
            "podTargetLabels": [TRACK_LABEL],
            "endpoints": [
                {"port": PORT_NAME, "path": METRICS_PATH, "interval": SCRAPE_INTERVAL, "scrapeTimeout": SCRAPE_TIMEOUT}
            ],
        },
    }


def scrape_config(namespace: str) -> dict[str, Any]:
    """A prometheus.yml `scrape_configs` entry: Kubernetes service discovery of the model server's endpoints
    (role `endpoints`), kept by the Service's labels and port name, with namespace, pod and track as labels
    (Prometheus configuration reference, kubernetes_sd_config and relabel_config)."""

    def meta(label: str) -> str:
        return "__meta_kubernetes_service_label_" + "".join(c if c.isalnum() else "_" for c in label)

    return {
        "scrape_configs": [
            {
                "job_name": f"{APP_NAME}-{namespace}",
                "metrics_path": METRICS_PATH,
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_TIMEOUT,
                "kubernetes_sd_configs": [{"role": "endpoints", "namespaces": {"names": [namespace]}}],
                "relabel_configs": [
                    {"source_labels": [meta("app.kubernetes.io/name")], "regex": APP_NAME, "action": "keep"},
                    # Only the Services that cover every pod once (see service_monitor).
                    {"source_labels": [meta(SCRAPE_LABEL)], "regex": "true", "action": "keep"},
                    {"source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": PORT_NAME, "action": "keep"},
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                    {
                        "source_labels": ["__meta_kubernetes_pod_label_" + TRACK_LABEL],
                        "target_label": TRACK_LABEL,
                    },
                ],
            }
        ]
    }
