"""The autoscaler's request-rate metric is one prometheus-adapter actually serves from what the server exports.

prometheus-adapter turns Prometheus series into custom-metrics API names by its discovery rules. Its default
rules (the prometheus-community Helm chart's `rules.default: true`, charts/prometheus-adapter/templates/
configmap.yaml; the same rules as kubernetes-sigs/prometheus-adapter cmd/config-gen/utils/default.go
DefaultConfig) are, for series that carry a `namespace` label and are not cAdvisor's `container_*`:

- a series not ending in `_total`: served under its own name (`sum(...) by (pod)`);
- `^(.*)_total$`, except `.*_seconds_total`: served as `$1`, the rate (`sum(rate(...[5m])) by (pod)`);
- `^(.*)_seconds_total$`: served as `$1`, the rate.

`name.as` is empty in every default rule, and an empty `as` with one capture group means `$1`
(pkg/naming/metric_namer.go NamersFromConfig; docs/config.md "Naming"). So a counter `foo_total` becomes `foo`,
not `foo_per_second` (that name appears only in docs/config.md's example of a custom `as`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import pytest

from components.settings import KubernetesSettings
from tests.serving_model_fixture import write_model_dir
from tests.serving_server_process import ServerProcess


def adapter_default_metric_names(series_names: Iterable[str]) -> dict[str, str]:
    """API metric name -> the series it is computed from, under prometheus-adapter's default rules."""
    served: dict[str, str] = {}
    for series in series_names:
        if series.startswith("container_"):
            continue
        if not series.endswith("_total"):
            served[series] = series
        elif series.endswith("_seconds_total"):
            served[series.removesuffix("_seconds_total")] = series
        else:
            served[series.removesuffix("_total")] = series
    return served


def exported_series(text: str) -> dict[str, str]:
    """Series name -> family type, from the Prometheus text exposition format (TYPE lines and sample lines)."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE))
    series: dict[str, str] = {}
    for name in re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )", text, flags=re.MULTILINE):
        family = next((f for f in types if name == f or name.removeprefix(f) in ("_bucket", "_sum", "_count")), name)
        series[name] = types.get(family, "untyped")
    return series


@pytest.fixture(scope="module")
def metrics_text(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """What the real server renders on /metrics after answering an /invocations request."""
    model_dir = write_model_dir(tmp_path_factory.mktemp("model"))
    process = ServerProcess(model_dir, tmp_path_factory.mktemp("log") / "server.log", workers=1)
    try:
        process.wait_until(200)
        status, _, _ = process.request("POST", "/invocations", b"1,2,3,red\n", {"Content-Type": "text/csv"})
        assert status == 200
        status, _, body = process.request("GET", "/metrics")
        assert status == 200
        yield body.decode()
    finally:
        assert process.terminate() == 0


def test_the_hpa_metric_is_served_by_the_adapters_default_rules_from_the_servers_request_counter(
    metrics_text: str,
) -> None:
    series = exported_series(metrics_text)
    assert series["mlplatform_serving_requests_total"] == "counter"
    served = adapter_default_metric_names(series)
    metric = KubernetesSettings().requests_per_second_metric
    # The adapter serves it, as the rate of the server's request counter.
    assert served.get(metric) == "mlplatform_serving_requests_total"


def test_the_old_per_second_name_is_not_served(metrics_text: str) -> None:
    """`..._per_second` is what a custom rule with `as: "${1}_per_second"` would serve; the default rules never
    do, so an HPA asking for it finds no metric and, beside the CPU metric, scales up but never down
    (kubernetes/kubernetes#99514)."""
    served = adapter_default_metric_names(exported_series(metrics_text))
    assert "mlplatform_serving_requests_per_second" not in served


def test_the_adapter_rules_as_modelled() -> None:
    served = adapter_default_metric_names(
        ["http_requests_total", "process_cpu_seconds_total", "queue_depth", "container_memory_usage_bytes"]
    )
    assert served == {
        "http_requests": "http_requests_total",
        "process_cpu": "process_cpu_seconds_total",
        "queue_depth": "queue_depth",
    }


def test_the_metric_families_contract_names_the_counter_when_the_server_declares_it() -> None:
    """serving/metrics.py's `METRIC_FAMILIES` (the serving container's contract of metric names), once present,
    must list the counter the autoscaler's metric is computed from."""
    import serving.metrics

    families = getattr(serving.metrics, "METRIC_FAMILIES", None)
    if families is None:
        pytest.skip("serving/metrics.py does not declare METRIC_FAMILIES yet")
    # Whatever shape each entry has (a name, or a tuple/record starting with one), the counter is among them.
    assert any("mlplatform_serving_requests_total" in repr(family) for family in families)


def test_the_exposition_parser_reads_families_and_their_series() -> None:
    text = '# TYPE a_total counter\na_total{x="1"} 3\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'
    assert exported_series(text) == {
        "a_total": "counter",
        "h_bucket": "histogram",
        "h_sum": "histogram",
        "h_count": "histogram",
    }
