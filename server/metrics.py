"""Prometheus metrics, one registry per app so several apps in one process don't collide.

Every label takes values from a fixed set, so the number of series is bounded whatever clients
send: routes are templates (not raw paths), methods outside the HTTP verbs count as `OTHER`,
statuses are the ones the app produces. Cache sizes and bounds are read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics"]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "rag_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "rag_http_request_duration_seconds",
            "Time from request start to the end of the response (streams included), by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.embed_batch = Histogram(
            "rag_embed_batch_size",
            "Questions embedded together in one model call (micro-batching).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.documents = Gauge("rag_index_documents", "Documents in the served index.", registry=r)
        self.chunks = Gauge("rag_index_chunks", "Chunks in the served index.", registry=r)
        self.last_rebuild_time = Gauge(
            "rag_index_last_rebuild_timestamp_seconds",
            "Unix time the last rebuild finished (0: none yet).",
            registry=r,
        )
        self.last_rebuild_ok = Gauge(
            "rag_index_last_rebuild_success",
            "1 if the last rebuild succeeded, 0 if it failed (-1: none yet).",
            registry=r,
        )
        self.last_rebuild_ok.set(-1)
        self.rebuilds = Counter(
            "rag_index_rebuilds_total", "Rebuilds finished, by result.", ["result"], registry=r
        )

    def track_index(self, counts: Callable[[], tuple[int, int]]) -> None:
        """Read document and chunk counts at scrape time, so a hot swap needs no bookkeeping."""
        self.documents.set_function(lambda: counts()[0])
        self.chunks.set_function(lambda: counts()[1])

    def track_caches(self, stats: Callable[[], dict[str, Any]]) -> None:
        """Export each cache's entries and bound (`rag.memory.CacheStat`) at scrape time."""
        self.registry.register(_CacheCollector(stats))

    def series(self) -> int:
        """Label sets of the request counter (its cardinality; bounded, see the docstring)."""
        return sum(
            1 for m in self.requests.collect() for s in m.samples if s.name.endswith("_total")
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_rebuild(self, ok: bool, finished_at: float) -> None:
        self.rebuilds.labels("success" if ok else "failure").inc()
        self.last_rebuild_ok.set(1 if ok else 0)
        self.last_rebuild_time.set(finished_at)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CacheCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._stats()
        entries = GaugeMetricFamily(
            "rag_cache_entries", "Entries held, by cache.", labels=["cache"]
        )
        bounds = GaugeMetricFamily(
            "rag_cache_bound", "Most entries a cache may hold.", labels=["cache"]
        )
        for name, st in sorted(stats.items()):
            entries.add_metric([name], st.size)
            bounds.add_metric([name], st.bound)
        yield entries
        yield bounds
