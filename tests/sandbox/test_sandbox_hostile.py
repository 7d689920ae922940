"""The hostile-function table, run straight against the namespaced backend.

Each row (hostile_rows.py) runs in a fresh sandbox; the row's check asserts
the safe outcome. The same rows are meant to be deployed through the
Lambda API once the gateway runs them (sandbox_probe.as_handler).
"""

from __future__ import annotations

import platform
import socket

import pytest
import sandbox_probe
from hostile_rows import ROWS


@pytest.fixture(scope="module")
def host_listener():
    """A TCP service on the host's loopback that no sandbox may reach."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv.getsockname()[1]
    srv.close()


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_hostile_row(row, backend, python, code_dir, host_listener, tmp_path):
    if row.x86_64_only and platform.machine() != "x86_64":
        pytest.skip("x86_64 ABI row")
    event = dict(row.event or {})
    if "port" in event:
        event["port"] = host_listener
    if "data_dir" in event:
        # A directory that exists on the host and must not inside.
        event["data_dir"] = str(tmp_path)
    outcome = sandbox_probe.run(backend, python, code_dir, row.snippet, event=event)
    assert not outcome.timed_out
    assert "exception" not in outcome.last, outcome.reports
    row.check(outcome.reports)
