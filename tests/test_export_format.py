"""The export's pure parts: RFC 5424 messages and RFC 6587 framing, the
--export-* parsers, and OTLP requests read back with the official classes."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from lambdalet.gateway.metering.export import syslog_format
from lambdalet.gateway.metering.export.otlp_encode import Encoder
from lambdalet.gateway.metering.export.targets import OtlpTarget, SyslogTarget, parse_otlp, parse_syslog
from lambdalet.gateway.metering.ledger import UsageRecord


def usage(request_id: str = "r-1", *, cold: bool = False, outcome: str = "success", duration_ns: int = 12_345_678) -> UsageRecord:
    return UsageRecord(
        request_id=request_id,
        function="fn",
        version="$LATEST",
        architecture="x86_64",
        started_ns=1_764_950_000_000_000_000,
        duration_ns=duration_ns,
        init_ns=130_000_000 if cold else 0,
        billed_ms=13,
        granularity_ms=1,
        memory_mb=128,
        max_memory_mb=41,
        cold=cold,
        outcome=outcome,
        account="0",
    )


def test_structured_data_values_are_escaped_and_header_fields_are_printable_ascii():
    assert syslog_format.sd_element("x@32473", {"a": 'q"b\\c]d'}) == '[x@32473 a="q\\"b\\\\c\\]d"]'
    assert syslog_format.header_field("a b\tc", 48) == "a_b_c"
    assert syslog_format.header_field("", 48) == "-"
    assert syslog_format.header_field("x" * 60, 48) == "x" * 48


def test_a_message_is_cut_to_the_limit_on_a_character_boundary():
    msg = syslog_format.message(0, "h", "fn", "-", "log", "-", "é" * 100, limit=101)
    assert len(msg) <= 101
    msg.decode("utf-8")  # no half character at the cut
    assert msg.startswith(b"<14>1 1970-01-01T00:00:00.000Z h fn - log - \xc3\xa9")


def test_octet_counting_frames_any_bytes():
    assert syslog_format.octet_counted(b"<14>1 a\nb") == b"9 <14>1 a\nb"


def test_a_call_gives_its_lines_then_a_report_from_the_platform_figures():
    lines = [(1_764_950_000_001, "START RequestId: r-1 Version: $LATEST"), (1_764_950_000_002, "hi")]
    out = syslog_format.CallMessages("host").of_call(usage(cold=True), lines, "2026/12/05/[$LATEST]ab")
    assert out[0] == (
        b"<14>1 2025-12-05T15:53:20.001Z host fn 2026/12/05/[$LATEST]ab log "
        b'[lambda@32473 function="fn" version="$LATEST" requestId="r-1"] START RequestId: r-1 Version: $LATEST'
    )
    assert out[1].endswith(b"] hi")
    report = out[2].decode()
    assert ' report [lambda@32473 function="fn" version="$LATEST" requestId="r-1"][report@32473 durationMs="12.35" ' in report
    assert 'initDurationMs="130.00" outcome="success" coldStart="true"]' in report
    assert report.endswith(
        " REPORT RequestId: r-1\tDuration: 12.35 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 41 MB\tInit Duration: 130.00 ms\t"
    )


def test_targets_take_what_the_help_says():
    assert parse_otlp("http://127.0.0.1:4318") == OtlpTarget("http", "127.0.0.1", 4318, "")
    assert parse_otlp("https://otel.example/otlp/").logs_path == "/otlp/v1/logs"
    assert parse_otlp("https://otel.example").port == 443
    assert parse_syslog("localhost:514") == SyslogTarget("tcp", "localhost", 514)
    assert parse_syslog("udp://[::1]:514") == SyslogTarget("udp", "::1", 514)


def test_otlp_requests_read_back_with_the_official_classes():
    encoder = Encoder(region="eu-west-1", account="123", host_name="h", scope_version="0.1")
    calls = [
        (usage("r-1", cold=True), "/aws/lambda/fn", "s1", [(5, "a"), (6, "b")]),
        (usage("r-2", outcome="timeout", duration_ns=3_000_000_000), "/aws/lambda/fn", "s1", [(7, "c")]),
    ]
    logs = ExportLogsServiceRequest.FromString(encoder.logs(calls, now_ns=99))
    (rl,) = logs.resource_logs
    attrs = {kv.key: kv.value for kv in rl.resource.attributes}
    assert attrs["faas.instance"].string_value == "s1" and attrs["cloud.region"].string_value == "eu-west-1"
    records = rl.scope_logs[0].log_records
    assert [(r.time_unix_nano, r.body.string_value, r.attributes[0].value.string_value) for r in records] == [
        (5_000_000, "a", "r-1"),
        (6_000_000, "b", "r-1"),
        (7_000_000, "c", "r-2"),
    ]
    metrics = ExportMetricsServiceRequest.FromString(encoder.metrics([u for u, *_ in calls], 10, 20))
    by_name = {m.name: m for m in metrics.resource_metrics[0].scope_metrics[0].metrics}
    assert by_name["faas.invocations"].sum.data_points[0].as_int == 2
    assert by_name["faas.errors"].sum.data_points[0].as_int == 1
    assert by_name["faas.timeouts"].sum.data_points[0].as_int == 1
    assert by_name["faas.coldstarts"].sum.data_points[0].as_int == 1
    duration = by_name["faas.invoke_duration"].histogram.data_points[0]
    assert (duration.count, duration.start_time_unix_nano, duration.time_unix_nano) == (2, 10, 20)
    assert sum(duration.bucket_counts) == 2 and duration.bucket_counts[2] == 1  # 12.3 ms in (10 ms, 25 ms]
    assert duration.max == 3.0
    assert by_name["faas.init_duration"].histogram.data_points[0].sum == 0.13
    assert by_name["lambdalet.billed_duration"].sum.data_points[0].as_int == 26
