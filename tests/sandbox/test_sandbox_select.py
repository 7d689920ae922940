"""Choosing the backend at start-up: namespaced with nothing to report on a
root host with cgroups (this project's machines), and an honest fallback."""
from __future__ import annotations

import os

import pytest

from lambdalet.sandbox import select
from lambdalet.sandbox.namespaced import NamespacedBackend
from lambdalet.sandbox.process import ProcessBackend


def test_full_isolation_here(runtime_root, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    backend, reasons = select.choose_backend(runtime_root, tmp_path)
    try:
        assert isinstance(backend, NamespacedBackend), reasons
        assert reasons == []
        assert all(backend.protections().values()), backend.protections()
    finally:
        backend.close()


def test_a_failing_probe_falls_back_loudly(runtime_root, tmp_path, monkeypatch):
    def broken(backend, root):
        raise OSError(1, "probe: pretend the kernel said no")

    monkeypatch.setattr(select, "probe", broken)
    backend, reasons = select.choose_backend(runtime_root, tmp_path)
    try:
        assert isinstance(backend, ProcessBackend)
        assert len(reasons) == 1 and "NOT isolated" in reasons[0] and "pretend" in reasons[0]
    finally:
        backend.close()
    with pytest.raises(OSError):
        select.choose_backend(runtime_root, tmp_path, required=True)
