"""The export's own figures on GET /metrics (prometheus_client), read from
the channels at scrape time: nothing is updated on the call path but the
channels' plain integers."""

from __future__ import annotations

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily


class ExportCollector:
    def __init__(self, exporter) -> None:
        self.exporter = exporter

    def collect(self):
        sent = CounterMetricFamily(
            "lambdalet_export_sent_calls", "Calls whose logs and REPORT figures the receiver accepted.", labels=["sink"]
        )
        dropped = CounterMetricFamily(
            "lambdalet_export_dropped_calls",
            "Calls not exported: buffer_full (the receiver was too slow or down for too long), "
            "rejected (the receiver refused them for good).",
            labels=["sink", "reason"],
        )
        failed = CounterMetricFamily("lambdalet_export_failed_tries", "Deliveries that failed and were tried again later.", labels=["sink"])
        queued = GaugeMetricFamily("lambdalet_export_queued_calls", "Calls waiting in the export buffer.", labels=["sink"])
        queued_bytes = GaugeMetricFamily("lambdalet_export_queued_bytes", "Log bytes waiting in the export buffer.", labels=["sink"])
        for stats in self.exporter.statistics():
            sent.add_metric([stats.sink], stats.sent_calls)
            dropped.add_metric([stats.sink, "buffer_full"], stats.dropped_full)
            dropped.add_metric([stats.sink, "rejected"], stats.dropped_rejected)
            failed.add_metric([stats.sink], stats.failed_tries)
            queued.add_metric([stats.sink], stats.queued_calls)
            queued_bytes.add_metric([stats.sink], stats.queued_bytes)
        yield from (sent, dropped, failed, queued, queued_bytes)


_registered: dict[int, ExportCollector] = {}


def register(exporter, registry=REGISTRY) -> ExportCollector | None:
    """Registers the export's collector (None: no export, no collector),
    replacing the one of a server that ran earlier in this process (tests)."""
    old = _registered.pop(id(registry), None)
    if old is not None:
        registry.unregister(old)
    if exporter is None:
        return None
    collector = ExportCollector(exporter)
    registry.register(collector)
    _registered[id(registry)] = collector
    return collector
