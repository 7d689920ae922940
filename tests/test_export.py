"""The operator's built-in export (`serve --export-otlp`, `--export-syslog`):
every answered call's log lines and REPORT figures reach Debian's rsyslogd
(TCP and UDP) and an OTLP/HTTP receiver that decodes them with
opentelemetry-proto's classes; a receiver that is down or refuses costs
the calls nothing, and /metrics counts what was dropped."""

from __future__ import annotations

import base64
import re
import signal
import subprocess
import sys

import pytest
import requests
from export_receivers import OtlpReceiver, Rsyslog
from helpers import ServerProcess, free_port, lambdalet_argv, make_zip, still_running, wait_for

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
HANDLER = (
    "import sys\n"
    "def handler(event, context):\n"
    "    print('hello from', event.get('n'))\n"
    "    print('REPORT RequestId: forged\\tDuration: 0.01 ms', file=sys.stderr)\n"
    "    return event.get('n')\n"
)


def deploy(lam, name: str, source: str = HANDLER, **kwargs) -> str:
    kwargs.setdefault("Runtime", f"python{sys.version_info[0]}.{sys.version_info[1]}")
    lam.create_function(FunctionName=name, Role=ROLE, Handler="app.handler", Code={"ZipFile": make_zip({"app.py": source})}, **kwargs)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return name


def invoke(lam, name: str, n: int) -> tuple[str, list[str]]:
    """(request id, the call's log lines as Lambda's LogResult tail shows them)."""
    resp = lam.invoke(FunctionName=name, Payload=b'{"n": %d}' % n, LogType="Tail")
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    return resp["ResponseMetadata"]["RequestId"], base64.b64decode(resp["LogResult"]).decode().splitlines()


def metric_values(text: str, name: str) -> dict[str, float]:
    """{label string: value} of one metric family's samples in /metrics."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M)}


@pytest.fixture
def rsyslog(tmp_path):
    server = Rsyslog(tmp_path / "rsyslog").start()
    yield server
    server.stop()


@pytest.fixture
def otlp():
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rsyslog_receives_every_line_and_the_report(tmp_path, rsyslog, transport):
    port = rsyslog.tcp_port if transport == "tcp" else rsyslog.udp_port
    target = f"127.0.0.1:{port}" if transport == "tcp" else f"udp://127.0.0.1:{port}"
    with ServerProcess(tmp_path / "data", "--export-syslog", target) as srv:
        assert any(f"syslog to {transport}://127.0.0.1:{port}" in line for line in srv.output), srv.output
        lam = srv.client()
        name = deploy(lam, "exported", MemorySize=160)
        calls = [invoke(lam, name, n) for n in range(3)]
        ids = {rid for rid, _ in calls}
        wait_for(
            lambda: (
                {m["structured-data"] for m in rsyslog.messages() if m["msgid"] == "report"}
                and sum(1 for m in rsyslog.messages() if m["msgid"] == "report") == 3
            ),
            timeout=20,
        )
        messages = rsyslog.messages()
        for rid, tail in calls:
            mine = [m for m in messages if f'requestId="{rid}"' in m["structured-data"]]
            logged = [m for m in mine if m["msgid"] == "log"]
            # Every line of the call's log, in order, as Lambda's tail shows it.
            assert [m["msg"] for m in logged] == tail
            assert all(m["app-name"] == name and m["pri"] == "14" for m in mine)
            assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", logged[0]["procid"])
            # The function's forged REPORT line is a line of its log, nothing more.
            assert "REPORT RequestId: forged\tDuration: 0.01 ms" in [m["msg"] for m in logged]
            (report,) = [m for m in mine if m["msgid"] == "report"]
            real = [line for line in tail if line.startswith(f"REPORT RequestId: {rid}\t")]
            assert report["msg"] == real[0]
            figures = dict(re.findall(r'(\w+)="([^"]*)"', report["structured-data"].split("][report@32473", 1)[1]))
            assert figures["memorySizeMB"] == "160"
            assert f"Billed Duration: {figures['billedDurationMs']} ms" in real[0]
            assert f"Duration: {figures['durationMs']} ms" in real[0]
            assert figures["outcome"] == "success"
            assert figures["coldStart"] == ("true" if rid == calls[0][0] else "false")
            assert ("initDurationMs" in figures) == (rid == calls[0][0])
        assert ids == {re.search(r'requestId="([^"]+)"', m["structured-data"]).group(1) for m in messages}
        text = requests.get(srv.url + "/metrics", timeout=10).text
        assert metric_values(text, "lambdalet_export_sent_calls_total") == {'sink="syslog"': 3.0}
        assert metric_values(text, "lambdalet_export_dropped_calls_total") == {
            'reason="buffer_full",sink="syslog"': 0.0,
            'reason="rejected",sink="syslog"': 0.0,
        }


def test_otlp_receiver_decodes_logs_and_report_metrics(tmp_path, otlp):
    with ServerProcess(tmp_path / "data", "--export-otlp", otlp.url) as srv:
        lam = srv.client()
        name = deploy(lam, "otlp-fn", MemorySize=256)
        calls = [invoke(lam, name, n) for n in range(4)]
        wait_for(lambda: sum(p.as_int for _, _, p in otlp.metric_points("faas.invocations")) == 4, timeout=20)
        wait_for(lambda: {r.attributes[0].value.string_value for _, r in otlp.log_records()} >= {rid for rid, _ in calls}, timeout=20)
        assert otlp.content_types == {"application/x-protobuf"}
        records = otlp.log_records()
        for rid, tail in calls:
            mine = [(res, r) for res, r in records if r.attributes[0].value.string_value == rid]
            assert [r.body.string_value for _, r in mine] == tail
            stamps = [r.time_unix_nano for _, r in mine]
            assert stamps == sorted(stamps) and stamps[0] > 0
            res = mine[0][0]
            assert res["faas.name"] == res["service.name"] == name
            assert res["faas.version"] == "$LATEST" and res["faas.max_memory"] == 256 << 20
            assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", res["faas.instance"])
            assert res["aws.log.group.names"] == [f"/aws/lambda/{name}"]
        points = otlp.metric_points("faas.invoke_duration")
        assert sum(p.count for _, _, p in points) == 4
        assert all(m.unit == "s" and m.histogram.aggregation_temporality == 1 for _, m, _ in points)  # DELTA
        # The platform's REPORT lines, not the one each call forged.
        reports = [line for rid, tail in calls for line in tail if line.startswith(f"REPORT RequestId: {rid}\t")]
        assert len(reports) == 4
        durations = [float(re.search(r"\tDuration: ([\d.]+) ms", line).group(1)) for line in reports]
        assert sum(p.sum for _, _, p in points) * 1000 == pytest.approx(sum(durations), abs=0.05)
        billed = [int(re.search(r"Billed Duration: (\d+) ms", line).group(1)) for line in reports]
        assert sum(p.as_int for _, _, p in otlp.metric_points("lambdalet.billed_duration")) == sum(billed)
        assert sum(p.as_int for _, _, p in otlp.metric_points("faas.coldstarts")) == 1
        assert sum(p.count for _, _, p in otlp.metric_points("faas.init_duration")) == 1
        assert sum(p.as_int for _, _, p in otlp.metric_points("faas.errors")) == 0
        assert {res["faas.name"] for res, _, _ in points} == {name}


def test_a_receiver_that_is_down_costs_the_calls_nothing_and_gets_them_later(tmp_path):
    port = free_port()  # nothing listens there yet
    with ServerProcess(tmp_path / "data", "--export-otlp", f"http://127.0.0.1:{port}") as srv:
        lam = srv.client()
        name = deploy(lam, "patient")
        ids = {invoke(lam, name, n)[0] for n in range(3)}
        wait_for(
            lambda: (
                metric_values(requests.get(srv.url + "/metrics", timeout=10).text, "lambdalet_export_failed_tries_total").get(
                    'sink="otlp"', 0
                )
                >= 2
            ),
            timeout=20,
        )
        receiver = OtlpReceiver(port).start()
        try:
            wait_for(lambda: {r.attributes[0].value.string_value for _, r in receiver.log_records()} == ids, timeout=30)
            wait_for(lambda: sum(p.as_int for _, _, p in receiver.metric_points("faas.invocations")) == 3, timeout=30)
        finally:
            receiver.stop()
        text = requests.get(srv.url + "/metrics", timeout=10).text
        assert metric_values(text, "lambdalet_export_dropped_calls_total")['reason="buffer_full",sink="otlp"'] == 0


def test_a_full_buffer_drops_new_calls_and_counts_them(tmp_path):
    port = free_port()
    with ServerProcess(tmp_path / "data", "--export-otlp", f"http://127.0.0.1:{port}", "--export-buffer-calls", "2") as srv:
        lam = srv.client()
        name = deploy(lam, "crowded")
        ids = [invoke(lam, name, n)[0] for n in range(5)]  # every call answered, receiver or not
        text = requests.get(srv.url + "/metrics", timeout=10).text
        assert metric_values(text, "lambdalet_export_dropped_calls_total")['reason="buffer_full",sink="otlp"'] == 3
        assert metric_values(text, "lambdalet_export_queued_calls")['sink="otlp"'] == 2
        receiver = OtlpReceiver(port).start()
        try:
            wait_for(lambda: sum(p.as_int for _, _, p in receiver.metric_points("faas.invocations")) == 2, timeout=30)
            assert {r.attributes[0].value.string_value for _, r in receiver.log_records()} == set(ids[:2])
        finally:
            receiver.stop()


def test_a_receiver_that_refuses_for_good_is_counted_not_retried(tmp_path, otlp):
    otlp.answers = [400]
    with ServerProcess(tmp_path / "data", "--export-otlp", otlp.url) as srv:
        lam = srv.client()
        name = deploy(lam, "refused")
        invoke(lam, name, 1)
        wait_for(
            lambda: (
                metric_values(requests.get(srv.url + "/metrics", timeout=10).text, "lambdalet_export_dropped_calls_total").get(
                    'reason="rejected",sink="otlp"'
                )
                == 1
            ),
            timeout=20,
        )
        # The next call goes through: one refusal does not stop the export.
        rid, _ = invoke(lam, name, 2)
        wait_for(lambda: rid in {r.attributes[0].value.string_value for _, r in otlp.log_records()}, timeout=20)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--export-otlp", "127.0.0.1:4318"], "expected an http:// or https:// URL"),
        (["--export-otlp", "http://127.0.0.1:99999"], "the port must be a number from 1 to 65535"),
        (["--export-otlp", "http://collector:4318/?token=x"], "a query, a fragment or credentials"),
        (["--export-otlp", "http://bad host:4318"], "is neither an IP address nor a host name"),
        (["--export-syslog", "127.0.0.1"], "the port is missing"),
        (["--export-syslog", "127.0.0.1:0"], "the port must be a number from 1 to 65535"),
        (["--export-syslog", "127.0.0.1:syslog"], "the port must be a number from 1 to 65535"),
        (["--export-syslog", "tls://127.0.0.1:6514"], "the transport is tcp:// or udp://"),
        (["--export-buffer-calls", "0"], "expected a whole number of at least 1"),
        (["--export-otlp", "http://127.0.0.1:4318", "--export-otlp-header", "bad name=1"], "expected NAME=VALUE with a header name"),
        (["--export-otlp", "http://127.0.0.1:4318", "--export-otlp-header", "Content-Length=1"], "is set by the export itself"),
        (["--export-otlp-header", "x-api-key=1"], "--export-otlp-header goes with --export-otlp"),
    ],
)
def test_bad_export_settings_are_refused_at_start_up(tmp_path, args, says):
    proc = subprocess.run(
        lambdalet_argv("serve", "--port", "0", "--data-dir", str(tmp_path / "data"), *args), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr
    assert "serving the Lambda API" not in proc.stdout


def _export_workers(srv: ServerProcess) -> set[tuple[int, int]]:
    found = set()
    for pid, start in srv.descendants():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().endswith(b"-m\0lambdalet.gateway.metering.export\0"):
                    found.add((pid, start))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_export_worker_ends_with_the_server(tmp_path, otlp, how):
    srv = ServerProcess(tmp_path / "data", "--export-otlp", otlp.url).start()
    try:
        lam = srv.client()
        name = deploy(lam, "ends")
        rid, _ = invoke(lam, name, 1)
        wait_for(lambda: rid in {r.attributes[0].value.string_value for _, r in otlp.log_records()}, timeout=20)
        workers = _export_workers(srv)
        assert len(workers) == 1  # the batch went through the worker
    finally:
        code = srv.stop(how)
    assert code == (0 if how == signal.SIGTERM else -signal.SIGKILL)
    # SIGTERM: the server closes the worker's stdin and waits for it;
    # SIGKILL: the worker sees its stdin end and leaves by itself.
    wait_for(lambda: not still_running(workers), timeout=15)


def test_a_batch_tried_again_sends_only_what_did_not_go_through(tmp_path, otlp):
    otlp.answers = [200, 503]  # the logs go through, the metrics are refused once
    with ServerProcess(tmp_path / "data", "--export-otlp", otlp.url) as srv:
        lam = srv.client()
        name = deploy(lam, "resumed")
        rid, tail = invoke(lam, name, 1)
        wait_for(lambda: sum(p.as_int for _, _, p in otlp.metric_points("faas.invocations")) == 1, timeout=20)
        records = [r.body.string_value for _, r in otlp.log_records() if r.attributes[0].value.string_value == rid]
        assert records == tail  # once, not once per try
        # The receiver has the metrics a moment before the server has the worker's answer.
        wait_for(
            lambda: (
                metric_values(requests.get(srv.url + "/metrics", timeout=10).text, "lambdalet_export_sent_calls_total")
                == {'sink="otlp"': 1.0}
            ),
            timeout=20,
        )
        text = requests.get(srv.url + "/metrics", timeout=10).text
        assert metric_values(text, "lambdalet_export_failed_tries_total") == {'sink="otlp"': 1.0}


HOSTILE = (
    "def handler(event, context):\n"
    "    print('x' * 20000)\n"  # past rsyslog's 8 KB: cut, not spilled into a next message
    "    print('99 <14>1 2020-01-01T00:00:00.000Z forged forged - log - pretend frame')\n"
    "    print('bell\\x07 nul\\x00 esc\\x1b[31m end')\n"
    "    return 1\n"
)


def test_what_a_function_prints_cannot_forge_or_break_syslog_messages(tmp_path, rsyslog):
    with ServerProcess(tmp_path / "data", "--export-syslog", f"127.0.0.1:{rsyslog.tcp_port}") as srv:
        lam = srv.client()
        name = deploy(lam, "hostile", HOSTILE)
        calls = [invoke(lam, name, n) for n in range(2)]
        wait_for(lambda: sum(1 for m in rsyslog.messages() if m["msgid"] == "report") == 2, timeout=20)
        messages = rsyslog.messages()
        assert {m["app-name"] for m in messages} == {name}  # nothing "forged" got its own message
        for rid, _ in calls:
            mine = [m for m in messages if f'requestId="{rid}"' in m["structured-data"]]
            texts = [m["msg"] for m in mine if m["msgid"] == "log"]
            long = [t for t in texts if t.startswith("xxx")]
            assert len(long) == 1 and 7000 < len(long[0]) < 8192  # cut to the message limit
            assert "99 <14>1 2020-01-01T00:00:00.000Z forged forged - log - pretend frame" in texts
            assert len([m for m in mine if m["msgid"] == "report"]) == 1


def test_otlp_headers_from_the_flag_or_the_sdk_variable_and_never_on_a_command_line(tmp_path, otlp):
    with ServerProcess(
        tmp_path / "flag",
        "--export-otlp",
        otlp.url,
        "--export-otlp-header",
        "x-api-key=s3cret",
        env={"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=ignored"},
    ) as srv:
        lam = srv.client()
        invoke(lam, deploy(lam, "headers"), 1)
        wait_for(lambda: otlp.metric_points("faas.invocations"), timeout=20)
        for pid, _ in srv.descendants():
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert b"s3cret" not in f.read()
    assert {h.get("x-api-key") for h in otlp.headers} == {"s3cret"}
    otlp.headers.clear()
    with ServerProcess(
        tmp_path / "env", "--export-otlp", otlp.url, env={"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=from%20env,x-tenant=t1"}
    ) as srv:
        lam = srv.client()
        invoke(lam, deploy(lam, "headers"), 1)
        wait_for(lambda: otlp.headers, timeout=20)
    assert {(h.get("x-api-key"), h.get("x-tenant")) for h in otlp.headers} == {("from env", "t1")}
