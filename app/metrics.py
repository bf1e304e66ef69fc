"""Prometheus metrics, one registry per application (nothing global at import time).

The per-request series are plain counts kept by `observe` and turned into Prometheus
families only when scraped: prometheus-client's own Counter and Histogram take a lock
per increment, three of them per request, which cost more than the rest of the
bookkeeping. `observe` runs on the event loop's thread, as does the scrape.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# The `le` labels as prometheus-client writes them (repr: "0.001", "1.0", "2.5").
_BOUNDS = [repr(bound) for bound in LATENCY_BUCKETS]


class _Latency:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        # One count per bucket (value <= bound), the last one for values above them all.
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[tuple[str, str], _Latency] = {}
        self.registry.register(_HttpCollector(self))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get((route, method))
        if latency is None:
            latency = self._latency[(route, method)] = _Latency()
        latency.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.total += seconds

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _HttpCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "suishen_http_requests_total",
            "HTTP requests by route template, method and status",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in sorted(self.metrics._requests.items()):
            requests.add_metric([route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "suishen_http_request_duration_seconds",
            "HTTP request latency by route template and method",
            labels=["route", "method"],
        )
        bounds = [*_BOUNDS, "+Inf"]
        for (route, method), observed in sorted(self.metrics._latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, observed.counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([route, method], buckets, observed.total)
        yield latency
