"""GET /metrics: Prometheus text from the shared counters."""

from __future__ import annotations

import botocore.exceptions
import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lambdalet.gateway.metering.meter import OUTCOME_INDEX, Meter
from lambdalet.gateway.metering.metrics import MeterCollector


def _samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _get(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_collector_exposes_every_counter(tmp_path):
    with Meter(tmp_path / "meter.bin") as meter:
        slot = meter.slot("f", "$LATEST")
        meter.record(slot, 1_500_000, 2, 128, 300_000_000, OUTCOME_INDEX["success"], True)  # 1.5 ms, cold
        meter.record(slot, 250_000_000, 250, 128, 0, OUTCOME_INDEX["error"], False)  # 250 ms
        meter.record(slot, 3_000_000_000, 3000, 128, 0, OUTCOME_INDEX["timeout"], False)  # 3 s
        meter.throttle(slot)
        meter.enter(slot)
        registry = CollectorRegistry()
        registry.register(MeterCollector(meter))
        samples = _samples(generate_latest(registry).decode())
    key = {"function": "f", "version": "$LATEST"}
    assert _get(samples, "lambdalet_invocations_total", outcome="success", **key) == 1
    assert _get(samples, "lambdalet_invocations_total", outcome="error", **key) == 1
    assert _get(samples, "lambdalet_invocations_total", outcome="timeout", **key) == 1
    assert _get(samples, "lambdalet_errors_total", **key) == 2
    assert _get(samples, "lambdalet_throttles_total", **key) >= 1  # boto3 may retry a 429 once
    assert _get(samples, "lambdalet_cold_starts_total", **key) == 1
    assert _get(samples, "lambdalet_concurrent_executions", **key) == 1
    assert _get(samples, "lambdalet_duration_seconds_count", **key) == 3
    assert _get(samples, "lambdalet_duration_seconds_sum", **key) == pytest.approx(3.2515)
    assert _get(samples, "lambdalet_duration_seconds_bucket", le="0.001", **key) == 0
    assert _get(samples, "lambdalet_duration_seconds_bucket", le="0.002", **key) == 1
    assert _get(samples, "lambdalet_duration_seconds_bucket", le="0.2", **key) == 1
    assert _get(samples, "lambdalet_duration_seconds_bucket", le="0.5", **key) == 2
    assert _get(samples, "lambdalet_duration_seconds_bucket", le="5.0", **key) == 3
    assert _get(samples, "lambdalet_duration_seconds_bucket", le="+Inf", **key) == 3
    assert _get(samples, "lambdalet_billed_duration_seconds_total", **key) == pytest.approx(3.252)
    assert _get(samples, "lambdalet_billed_gb_seconds_total", **key) == pytest.approx(3252 * 128 / 1024 / 1000)
    assert _get(samples, "lambdalet_init_duration_seconds_total", **key) == pytest.approx(0.3)


def test_metrics_endpoint_needs_no_signature_and_counts_calls(server, lam, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    if e.get('fail'):\n        raise RuntimeError('no')\n    return 1\n"})
    lam.invoke(FunctionName=name, Payload=b"{}")
    lam.invoke(FunctionName=name, Payload=b"{}")
    lam.invoke(FunctionName=name, Payload=b'{"fail": true}')
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert info.value.response["Error"]["Code"] == "TooManyRequestsException"
    resp = requests.get(f"{server.url}/metrics", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples = _samples(resp.text)
    key = {"function": name, "version": "$LATEST"}
    assert _get(samples, "lambdalet_invocations_total", outcome="success", **key) == 2
    assert _get(samples, "lambdalet_invocations_total", outcome="error", **key) == 1
    assert _get(samples, "lambdalet_duration_seconds_count", **key) == 3
    assert _get(samples, "lambdalet_cold_starts_total", **key) == 1
    assert _get(samples, "lambdalet_throttles_total", **key) >= 1  # boto3 may retry a 429 once
    assert _get(samples, "lambdalet_concurrent_executions", **key) == 0
    assert _get(samples, "lambdalet_billed_gb_seconds_total", **key) > 0
    # Only GET /metrics is unsigned; the usage report is not.
    assert requests.get(f"{server.url}/_lambdalet/usage", timeout=10).status_code == 403
