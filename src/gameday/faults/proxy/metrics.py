"""Prometheus view of the engine, computed at scrape time from the links' own counters.

Nothing on the data path touches prometheus-client: the forwarding protocols keep plain
integers and this collector reads them when ``/metrics`` is asked, on the loop that owns
them, so a scrape costs nothing per chunk and needs no lock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gameday.faults.proxy.engine import ProxyEngine


class EngineCollector(Collector):
    def __init__(self, engine: ProxyEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        open_ = GaugeMetricFamily(
            "gameday_proxy_connections_open", "Connections open through the link.", labels=["link"]
        )
        total = CounterMetricFamily(
            "gameday_proxy_connections", "Connections accepted by the link.", labels=["link"]
        )
        nbytes = CounterMetricFamily(
            "gameday_proxy_bytes",
            "Bytes read by the link, upstream (client to server) and downstream.",
            labels=["link", "direction"],
        )
        toxics = GaugeMetricFamily(
            "gameday_proxy_toxics_active", "Toxics active on the link.", labels=["link", "kind"]
        )
        for link in self.engine.links():
            stats = link.stats()
            open_.add_metric([link.name], stats["connections_open"])
            total.add_metric([link.name], stats["connections_total"])
            nbytes.add_metric([link.name, "upstream"], stats["bytes_upstream"])
            nbytes.add_metric([link.name, "downstream"], stats["bytes_downstream"])
            for kind, count in sorted(Counter(active.kind for active in link.toxics).items()):
                toxics.add_metric([link.name, kind], count)
        yield from (open_, total, nbytes, toxics)


def engine_registry(engine: ProxyEngine) -> CollectorRegistry:
    """A registry of this engine only (not the process-global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine))
    return registry
