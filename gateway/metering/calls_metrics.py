"""The call journal's state for /metrics, read at scrape time: whether
usage and logs reach SQLite, how many journal files wait for it, and the
free space of the data dir they wait on."""

from __future__ import annotations

import os

from prometheus_client.core import REGISTRY, GaugeMetricFamily

from .calls import CallJournal


class CallsCollector:
    def __init__(self, calls: CallJournal, data_dir: str) -> None:
        self.calls = calls
        self.data_dir = data_dir

    def collect(self):
        yield GaugeMetricFamily(
            "lambdalet_usage_and_logs_degraded",
            "1 while answered calls' usage and logs cannot be written to SQLite (a full disk): they wait in the journal.",
            value=int(self.calls.degraded is not None),
        )
        yield GaugeMetricFamily(
            "lambdalet_journal_backlog_files",
            "Journal files of answered calls waiting to be written to SQLite.",
            value=self.calls.backlog_files,
        )
        try:
            st = os.statvfs(self.data_dir)
        except OSError:
            return
        yield GaugeMetricFamily(
            "lambdalet_data_dir_free_bytes",
            "Free space in the data dir's file system, for unprivileged writers.",
            value=st.f_bavail * st.f_frsize,
        )


_registered: dict[int, CallsCollector] = {}


def register(calls: CallJournal, data_dir: str, registry=REGISTRY) -> CallsCollector:
    """Registers (or re-points, when a server restarts in one process) the
    collector with the registry /metrics serves."""
    old = _registered.pop(id(registry), None)
    if old is not None:
        registry.unregister(old)
    collector = CallsCollector(calls, data_dir)
    registry.register(collector)
    _registered[id(registry)] = collector
    return collector
