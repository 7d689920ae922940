"""The export as the server assembles it: one channel per configured
destination, the hook Accounting calls for every answered call, and the
tasks that empty the channels."""

from __future__ import annotations

import socket

import trio

from .channel import Channel, ChannelStatistics
from .process_sink import Frame, ProcessSink
from .targets import ExportConfigError, OtlpTarget, SyslogTarget, parse_otlp, parse_syslog
from .worker import SinkSpec


class Exporter:
    def __init__(self, destinations: list[tuple[SinkSpec, Channel[Frame]]]) -> None:
        """destinations: each one's spec (what describe says) and its channel."""
        self.specs = [spec for spec, _ in destinations]
        self.channels = [channel for _, channel in destinations]
        self._offers = tuple(channel.offer for channel in self.channels)

    def record(self, usage, log) -> None:
        """Accounting's export hook: after a call's usage row and log are
        journaled, before it is answered. Appends only."""
        for offer in self._offers:
            offer(usage, log)

    def statistics(self) -> list[ChannelStatistics]:
        return [channel.statistics() for channel in self.channels]

    def describe(self) -> list[str]:
        out = []
        for spec in self.specs:
            if spec.otlp is not None:
                out.append(
                    f"exporting logs and REPORT metrics over OTLP/HTTP to {spec.otlp.url(spec.otlp.logs_path)} "
                    f"and {spec.otlp.url(spec.otlp.metrics_path)}"
                )
            elif spec.syslog is not None:
                out.append(f"exporting logs and REPORT lines as RFC 5424 syslog to {spec.syslog.url()}")
        return out

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for channel in self.channels:
                await nursery.start(channel.run)
            task_status.started()


def targets(
    otlp: str | None, syslog: str | None, otlp_headers: list[str] | None = None, env_headers: str | None = None
) -> tuple[OtlpTarget | None, SyslogTarget | None]:
    """The --export-* values checked (ExportConfigError says what is wrong)."""
    if otlp_headers and not otlp:
        raise ExportConfigError("--export-otlp-header goes with --export-otlp")
    return (parse_otlp(otlp, otlp_headers, env_headers) if otlp else None), (parse_syslog(syslog) if syslog else None)


def build(
    otlp: OtlpTarget | None, syslog: SyslogTarget | None, *, region: str, account: str, version: str = "", **channel_options
) -> Exporter | None:
    """None when nothing is to be exported. Each destination's batches are
    encoded and sent by a worker process of its own (worker.py)."""
    hostname = socket.gethostname()
    specs = []
    if otlp is not None:
        specs.append(SinkSpec(otlp=otlp, region=region, account=account, hostname=hostname, version=version))
    if syslog is not None:
        specs.append(SinkSpec(syslog=syslog, hostname=hostname))
    return Exporter([(spec, Channel(ProcessSink(spec), **channel_options)) for spec in specs]) if specs else None
