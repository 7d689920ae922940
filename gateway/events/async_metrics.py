"""The async queue's gauges for /metrics, read from QueueStatistics at
scrape time (a collector, so nothing is updated on the dispatch path)."""

from __future__ import annotations

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily

from .async_queue import AsyncQueue


class QueueCollector:
    def __init__(self, queue: AsyncQueue) -> None:
        self.queue = queue

    def collect(self):
        s = self.queue.statistics()
        yield GaugeMetricFamily("lambdalet_async_queue_depth", "Accepted asynchronous events not yet finished.", value=s.depth)
        yield GaugeMetricFamily(
            "lambdalet_async_queue_oldest_age_seconds", "Age of the oldest queued asynchronous event.", value=s.oldest_age_s
        )
        yield GaugeMetricFamily("lambdalet_async_queue_in_flight", "Asynchronous events running now.", value=s.in_flight)
        yield GaugeMetricFamily("lambdalet_async_dead_letters", "Records waiting in the built-in destination queues.", value=s.dead_letters)
        yield CounterMetricFamily("lambdalet_async_retries", "Function-error retries scheduled.", value=s.retries)
        yield CounterMetricFamily(
            "lambdalet_async_throttles", "Asynchronous attempts throttled or refused by the platform.", value=s.throttles
        )
        yield CounterMetricFamily("lambdalet_async_succeeded", "Asynchronous events that succeeded.", value=s.succeeded)
        yield CounterMetricFamily(
            "lambdalet_async_failed", "Asynchronous events whose retries ran out or that grew too old.", value=s.failed
        )


_registered: dict[int, QueueCollector] = {}


def register(queue: AsyncQueue, registry=REGISTRY) -> QueueCollector:
    """Registers (or re-points, when a server restarts in one process) the
    queue's collector with the registry /metrics serves."""
    old = _registered.pop(id(registry), None)
    if old is not None:
        registry.unregister(old)
    collector = QueueCollector(queue)
    registry.register(collector)
    _registered[id(registry)] = collector
    return collector
