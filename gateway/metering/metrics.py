"""GET /metrics: Prometheus text, read from the shared counters.

A prometheus_client custom collector: nothing is updated on the call path
beyond csrc/meter's atomic adds, and each scrape copies every function's
slot with a lock-free consistent snapshot (so, per function, the histogram
count always equals the invocation count). The counters live in the data
directory and persist across restarts; Prometheus takes counters that only
grow across a restart as they are.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from .meter import OUTCOMES, Meter, hist_upper_bounds_ns

# The exposed buckets: 1, 2 and 5 of each decade from 1 us to 1000 s. The
# meter's buckets are finer (9 per decade); these bounds are among its
# bounds, so merging is exact.
_EXPOSED_NS = [m * 10**e for e in range(3, 13) for m in (1, 2, 5) if m * 10**e <= 10**12]


def _le(ns: int) -> str:
    # As prometheus_client's own histograms write bounds: 5.0, 0.001, 1e-06.
    return floatToGoString(ns / 1e9)


class MeterCollector:
    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        bounds = hist_upper_bounds_ns()
        # For each exposed bound, how many of the meter's buckets lie below it.
        self._cuts = [(ns, bounds.index(ns) + 1) for ns in _EXPOSED_NS]

    def collect(self):
        labels = ["function", "version"]
        invocations = CounterMetricFamily(
            "lambdalet_invocations",
            "Calls finished, by outcome (success, error, timeout, oom, crash, init_error).",
            labels=[*labels, "outcome"],
        )
        errors = CounterMetricFamily("lambdalet_errors", "Calls that ended in any function error.", labels=labels)
        throttles = CounterMetricFamily("lambdalet_throttles", "Calls refused with TooManyRequestsException.", labels=labels)
        cold = CounterMetricFamily("lambdalet_cold_starts", "Calls that started a new instance.", labels=labels)
        concurrent = GaugeMetricFamily("lambdalet_concurrent_executions", "Calls in flight now.", labels=labels)
        duration = HistogramMetricFamily(
            "lambdalet_duration_seconds",
            "Call duration, measured by the server from handing the call to its worker to its answer.",
            labels=labels,
        )
        billed = CounterMetricFamily(
            "lambdalet_billed_duration_seconds", "Billed duration, rounded up to the billing granularity.", labels=labels
        )
        gb_s = CounterMetricFamily("lambdalet_billed_gb_seconds", "Billed compute: memory GB x billed seconds.", labels=labels)
        init = CounterMetricFamily("lambdalet_init_duration_seconds", "Init Duration of cold starts.", labels=labels)
        for snap in self.meter.snapshot():
            key = [snap.function, snap.version]
            for outcome in OUTCOMES:
                count = snap.outcomes.get(outcome)
                if count is not None:
                    invocations.add_metric([*key, outcome], count)
            errors.add_metric(key, snap.errors)
            throttles.add_metric(key, snap.throttles)
            cold.add_metric(key, snap.cold_starts)
            concurrent.add_metric(key, snap.concurrent)
            cumulative = []
            for ns, upto in self._cuts:
                cumulative.append((_le(ns), sum(snap.histogram[:upto])))
            cumulative.append(("+Inf", sum(snap.histogram)))
            duration.add_metric(key, cumulative, sum_value=snap.duration_ns / 1e9)
            billed.add_metric(key, snap.billed_ms / 1000)
            gb_s.add_metric(key, snap.gb_seconds)
            init.add_metric(key, snap.init_ns / 1e9)
        yield from (invocations, errors, throttles, cold, concurrent, duration, billed, gb_s, init)


_registered: dict[int, MeterCollector] = {}


def register(meter: Meter, registry=REGISTRY) -> MeterCollector:
    """Registers the meter's collector, re-pointing it when a server
    restarts inside one process (tests)."""
    old = _registered.pop(id(registry), None)
    if old is not None:
        registry.unregister(old)
    collector = MeterCollector(meter)
    registry.register(collector)
    _registered[id(registry)] = collector
    return collector


def render(registry=REGISTRY) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
