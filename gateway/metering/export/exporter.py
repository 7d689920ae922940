"""The export as the server assembles it: one channel per configured
destination, the hook Accounting calls for every answered call, and the
tasks that empty the channels."""
from __future__ import annotations

import socket

import trio

from .channel import Channel, ChannelStatistics
from .sinks import OtlpSink, SyslogSink
from .targets import OtlpTarget, SyslogTarget, parse_otlp, parse_syslog


class Exporter:
    def __init__(self, channels: list[Channel]) -> None:
        self.channels = channels
        self._offers = tuple(channel.offer for channel in channels)

    def record(self, usage, log) -> None:
        """Accounting's export hook: after a call's usage row and log are
        journaled, before it is answered. Appends only."""
        for offer in self._offers:
            offer(usage, log)

    def statistics(self) -> list[ChannelStatistics]:
        return [channel.statistics() for channel in self.channels]

    def describe(self) -> list[str]:
        out = []
        for channel in self.channels:
            sink = channel.sink
            if isinstance(sink, OtlpSink):
                out.append(f"exporting logs and REPORT metrics over OTLP/HTTP to {sink.target.url(sink.target.logs_path)} "
                           f"and {sink.target.url(sink.target.metrics_path)}")
            elif isinstance(sink, SyslogSink):
                out.append(f"exporting logs and REPORT lines as RFC 5424 syslog to {sink.target.url()}")
        return out

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for channel in self.channels:
                await nursery.start(channel.run)
            task_status.started()


def targets(otlp: str | None, syslog: str | None) -> tuple[OtlpTarget | None, SyslogTarget | None]:
    """The --export-* values checked (ExportConfigError says what is wrong)."""
    return (parse_otlp(otlp) if otlp else None), (parse_syslog(syslog) if syslog else None)


def build(otlp: OtlpTarget | None, syslog: SyslogTarget | None, *, region: str, account: str, version: str = "",
          **channel_options) -> Exporter | None:
    """None when nothing is to be exported."""
    hostname = socket.gethostname()
    channels = []
    if otlp is not None:
        # Imported here: protobuf's classes load only for a server that exports over OTLP.
        from .otlp_encode import Encoder

        encoder = Encoder(region=region, account=account, host_name=hostname, scope_version=version)
        channels.append(Channel(OtlpSink(otlp, encoder), **channel_options))
    if syslog is not None:
        channels.append(Channel(SyslogSink(syslog, hostname), **channel_options))
    return Exporter(channels) if channels else None
