"""The operator's export: every answered call's log lines and REPORT
figures shipped to the operator's own systems, built in (`serve
--export-otlp URL`, `--export-syslog [tcp://|udp://]HOST:PORT`).

Accounting hands each answered call to Exporter.record, which only
appends it to each destination's bounded buffer; a trio task per
destination takes batches from it and hands them to a worker process of
the destination's own, which encodes and sends them, off the server's
event loop.

- targets.py        the --export-* values, parsed and checked at start-up.
- channel.py        one destination's bounded buffer, batches, retries
                    with backoff, and the counts /metrics shows.
- sinks.py          the Sink protocol, and the OTLP/HTTP and syslog sinks
                    (encode a batch once, deliver its payloads).
- otlp_encode.py    OTLP logs and metrics requests (opentelemetry-proto's
                    classes). Pure.
- syslog_format.py  RFC 5424 messages and RFC 6587 octet counting. Pure.
- http_client.py    a small HTTP/1.1 client (h11) for the OTLP sink.
- process_sink.py   the server's side of a worker: a Sink that hands each
                    batch over as one msgpack frame and reads the answer.
- worker.py         the worker process: the real sink behind a pipe.
- __main__.py       its entry point (python -m lambdalet.gateway.metering.export).
- exporter.py       the channels as the server assembles them.
- export_metrics.py the export's collector for GET /metrics.
"""

from .exporter import Exporter, build, targets
from .targets import ExportConfigError

__all__ = ["ExportConfigError", "Exporter", "build", "targets"]
