"""The canary's real share of requests under load when the canary is slower, by canary design.

A small simulation of what the cluster does, one second a step:

- Clients hold keep-alive connections to the Service; kube-proxy sends each new connection to one ready
  endpoint at random with equal probability, and the connection stays there (kubernetes.io, "Virtual IPs and
  Service Proxies", iptables mode; kubernetes/kubernetes pkg/proxy/iptables/proxier.go writes
  `-m statistic --mode random --probability 1/(n-i)` per endpoint). Requests are balanced per connection, not
  per request. A connection is re-opened when its pod goes away, or when the client recycles it (the server
  closes a connection only after 75 s idle, serving/server.py KEEP_ALIVE_S, so a busy one stays).
- Each autoscaler runs every 15 s: desired = ceil(ready pods x average utilisation / target), skipped within
  the 10 % tolerance; scale-up at once, scale-in only to the highest recommendation of the last 300 s and one
  pod a minute (kubernetes.io, "Horizontal Pod Autoscaling", Algorithm details; the `behavior` our component sets).
- A pod's CPU is the requests it serves times the CPU each costs; the canary costs 1.5 times the stable's.

The designs: `independent` is the previous one (an autoscaler per track, the canary's bounds the stable bounds
scaled by the percent); `fixed` is pod routing now (a fixed canary, rounded down at the stable minimum, only the
stable pods scale); weighted routing (`gateway-api`) splits each request by weight, so its share is the percent
by construction (Gateway API HTTPBackendRef `weight`).

docs/kubernetes.md shows the table `canary_share_table` renders; a test keeps the two equal.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from components.settings import KubernetesSettings

SYNC_SECONDS = 15
TOLERANCE = 0.1
SCALE_DOWN_WINDOW_SECONDS = 300
SCALE_DOWN_EVERY_SECONDS = 60
Pod = tuple[str, int]


@dataclass
class _Track:
    cpu_seconds_per_request: float
    low: int
    high: int
    autoscaled: bool
    ready: list[Pod] = field(default_factory=list)
    starting: list[tuple[float, Pod]] = field(default_factory=list)
    recommendations: list[tuple[int, int]] = field(default_factory=list)
    last_scale_down: float = -1e9


@dataclass(frozen=True)
class Scenario:
    """Stable + canary under a steady load; the canary is `slower` times as costly per request."""

    percent: int = 20
    min_replicas: int = 4
    max_replicas: int = 12
    slower: float = 1.5
    requests_per_second: float = 1500.0
    cpu_ms_per_request: float = 3.0  # on the stable model; a pod requests one CPU
    target_utilisation: float = 0.7
    clients: int = 400  # keep-alive connections
    connection_life_seconds: float = 120.0  # how long a client keeps a connection before re-opening it
    pod_start_seconds: float = 60.0
    canary_ready_at_seconds: float = 0.0  # when the canary's pods become ready (0: from the start)
    duration_seconds: int = 3600
    seed: int = 1


@dataclass(frozen=True)
class Share:
    mean_percent: float  # over the second half of the run, once the autoscalers have settled
    max_percent: float  # the highest second
    pods: dict[str, int]  # ready pods per track at the end
    timeline: tuple[float, ...]  # the canary's percent of the requests, each second


def simulate(design: str, s: Scenario) -> Share:
    rng = random.Random(s.seed)
    ids = iter(range(10**9))
    stable_cpu = s.cpu_ms_per_request / 1000
    if design == "independent":
        low = max(1, round(s.min_replicas * s.percent / (100 - s.percent)))
        high = max(low, round(s.max_replicas * s.percent / (100 - s.percent)))
        canary = _Track(s.slower * stable_cpu, low, high, autoscaled=True)
    elif design == "fixed":
        count = KubernetesSettings(
            canary_percent=s.percent, min_replicas=s.min_replicas, max_replicas=s.max_replicas
        ).canary_replicas()
        canary = _Track(s.slower * stable_cpu, count, count, autoscaled=False)
    else:
        raise ValueError(f"unknown design {design!r}")
    tracks = {"stable": _Track(stable_cpu, s.min_replicas, s.max_replicas, autoscaled=True), "canary": canary}
    for name, t in tracks.items():
        t.ready = [(name, next(ids)) for _ in range(t.low)]
    if s.canary_ready_at_seconds:
        canary.starting = [(s.canary_ready_at_seconds, pod) for pod in canary.ready]
        canary.ready = []

    def ready_pods() -> list[Pod]:
        return [p for t in tracks.values() for p in t.ready]

    connections = [rng.choice(ready_pods()) for _ in range(s.clients)]
    per_connection = s.requests_per_second / s.clients
    shares: list[float] = []
    for now in range(s.duration_seconds):
        for t in tracks.values():
            t.ready += [p for at, p in t.starting if at <= now]
            t.starting = [(at, p) for at, p in t.starting if at > now]
        ready = ready_pods()
        alive = set(ready)
        for i, pod in enumerate(connections):
            if pod not in alive or rng.random() < 1 / s.connection_life_seconds:
                connections[i] = rng.choice(ready)
        load: dict[Pod, float] = {}
        for pod in connections:
            load[pod] = load.get(pod, 0.0) + per_connection
        shares.append(sum(v for p, v in load.items() if p[0] == "canary") / s.requests_per_second)
        if now % SYNC_SECONDS:
            continue
        for name, t in tracks.items():
            if not t.autoscaled:
                continue
            current = len(t.ready) + len(t.starting)
            if not t.ready:
                continue
            utilisation = sum(load.get(p, 0.0) for p in t.ready) * t.cpu_seconds_per_request / len(t.ready)
            ratio = utilisation / s.target_utilisation
            desired = current if abs(ratio - 1) <= TOLERANCE else math.ceil(len(t.ready) * ratio)
            desired = min(t.high, max(t.low, desired))
            t.recommendations = [(at, d) for at, d in t.recommendations if at > now - SCALE_DOWN_WINDOW_SECONDS]
            t.recommendations.append((now, desired))
            if desired > current:
                t.starting += [(now + s.pod_start_seconds, (name, next(ids))) for _ in range(desired - current)]
            elif (
                max(d for _, d in t.recommendations) < current
                and now - t.last_scale_down >= SCALE_DOWN_EVERY_SECONDS
                and len(t.ready) > 1
            ):
                t.ready.pop()
                t.last_scale_down = now
    settled = shares[s.duration_seconds // 2 :]
    return Share(
        mean_percent=100 * sum(settled) / len(settled),
        max_percent=100 * max(shares),
        pods={name: len(t.ready) for name, t in tracks.items()},
        timeline=tuple(100 * share for share in shares),
    )


LOADS = (800.0, 1500.0, 2500.0)


def canary_share_table() -> str:
    """The markdown table in docs/kubernetes.md: the canary's share of requests per design and load."""
    lines = [
        "| load (requests/s) | autoscaler per track (before) | fixed canary (`pods`) | weighted (`gateway-api`) |",
        "|---|---|---|---|",
    ]
    for rate in LOADS:
        scenario = Scenario(requests_per_second=rate)
        cells = []
        for design in ("independent", "fixed"):
            share = simulate(design, scenario)
            cells.append(
                f"{share.mean_percent:.0f} % (peak {share.max_percent:.0f} %, "
                f"{share.pods['canary']} of {share.pods['canary'] + share.pods['stable']} pods)"
            )
        lines.append(f"| {rate:.0f} | {cells[0]} | {cells[1]} | {scenario.percent} % |")
    return "\n".join(lines)


def test_an_autoscaler_per_track_lets_a_slower_canary_take_more_than_its_percent() -> None:
    """The design being replaced: a slower canary uses more CPU per request, so its own autoscaler adds canary
    pods while the stable one removes stable pods, and the canary's share of connections grows with its share of
    pods."""
    for rate in LOADS:
        share = simulate("independent", Scenario(requests_per_second=rate))
        assert share.mean_percent > 20 + 5, (rate, share)


def test_a_fixed_canary_never_averages_more_than_its_percent_and_shrinks_as_the_stable_pods_scale_out() -> None:
    shares = [simulate("fixed", Scenario(requests_per_second=rate)) for rate in LOADS]
    for share in shares:
        assert share.pods["canary"] == 1
        assert share.mean_percent <= 20 + 1  # 1 of 5 pods at the minimum, less as the stable pods scale out
    assert shares[0].mean_percent > shares[1].mean_percent > shares[2].mean_percent


def test_per_connection_balancing_lets_single_seconds_overshoot_with_few_connections() -> None:
    """Each connection lands on one pod at random: the share of a second scatters around the pod share, less
    with more connections."""
    few = simulate("fixed", Scenario(requests_per_second=800, clients=50))
    many = simulate("fixed", Scenario(requests_per_second=800, clients=2000))
    assert few.max_percent > many.max_percent > 20


def test_a_canary_started_under_load_gets_traffic_only_as_clients_reopen_connections() -> None:
    """Existing keep-alive connections stay on the stable pods: a canary that starts under load gets requests
    only from connections opened after it is ready. Clients that recycle connections every 2 minutes give it
    its pod share within minutes; clients that never do send it nothing, whatever its pod count."""
    start = 600
    recycled = simulate("fixed", Scenario(requests_per_second=800, canary_ready_at_seconds=start))
    pinned = simulate(
        "fixed", Scenario(requests_per_second=800, canary_ready_at_seconds=start, connection_life_seconds=math.inf)
    )
    first_minute = recycled.timeline[start : start + 60]
    assert sum(first_minute) / 60 < 10  # well below its 20 % of the pods
    assert recycled.mean_percent > 15
    assert max(pinned.timeline[start:]) == 0


def test_the_docs_state_the_simulated_share() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "kubernetes.md").read_text()
    begin, end = "<!-- canary-share:begin -->", "<!-- canary-share:end -->"
    assert begin in docs and end in docs
    stated = docs.split(begin, 1)[1].split(end, 1)[0].strip()
    assert stated == canary_share_table(), "docs/kubernetes.md is stale: paste canary_share_table() between the markers"


@pytest.mark.parametrize("design", ["independent", "fixed"])
def test_the_simulation_is_deterministic(design: str) -> None:
    scenario = Scenario(duration_seconds=600)
    assert simulate(design, scenario) == simulate(design, scenario)
