"""Every sandbox backend answers the whole SandboxBackend Protocol, and what
the gateway says about how workers start comes from it (no getattr on a
backend): the start-up lines (execution/runtime_setup.py) and `lambdalet
doctor`'s worker line (cli/doctor.py)."""

from __future__ import annotations

import inspect
import os
import uuid

import pytest

from lambdalet.gateway.cli import doctor
from lambdalet.gateway.execution import runtime_setup
from lambdalet.sandbox.namespaced import NamespacedBackend
from lambdalet.sandbox.process import ProcessBackend
from lambdalet.sandbox.spec import SandboxBackend, SandboxSpec

# What the Protocol declares: its attributes and its methods.
MEMBERS = sorted(
    {*SandboxBackend.__annotations__}
    | {name for name, value in vars(SandboxBackend).items() if inspect.isfunction(value) and not name.startswith("_")}
)


def _spawn_one(backend, tmp_path) -> None:
    """One worker, started as a cold start starts it, until it says ready."""
    code = tmp_path / f"code-{uuid.uuid4().hex[:8]}"
    code.mkdir()
    os.chmod(code, 0o755)
    sandbox = backend.spawn(SandboxSpec(instance_id=f"t-{uuid.uuid4().hex[:12]}", function_name="t", code_dir=str(code)))
    try:
        sandbox.control.settimeout(30)
        assert sandbox.control.recv(64)
    finally:
        sandbox.destroy()


def test_the_protocol_declares_how_workers_start():
    assert "zygote_enabled" in MEMBERS and "zygote_running" in MEMBERS


def test_the_process_backend_answers_the_whole_protocol(runtime_root, tmp_path):
    backend = ProcessBackend(runtime_root)
    assert [m for m in MEMBERS if not hasattr(backend, m)] == []
    assert backend.zygote_enabled is False
    _spawn_one(backend, tmp_path)
    assert backend.zygote_running() is False
    assert runtime_setup.how_workers_start(runtime_root, backend).startswith("workers: an interpreter per sandbox;")
    assert doctor._worker_start(backend).startswith("workers: an interpreter started per sandbox;")


def test_the_namespaced_backend_answers_the_whole_protocol(backend):
    assert [m for m in MEMBERS if not hasattr(backend, m)] == []


def test_a_zygote_runs_from_the_first_spawn_and_the_lines_say_so(backend, runtime_root, tmp_path):
    if runtime_root.zygote_unavailable() is not None:
        pytest.fail(f"this interpreter cannot run a zygote here: {runtime_root.zygote_unavailable()}")
    assert backend.zygote_enabled is True
    assert runtime_setup.how_workers_start(runtime_root, backend).startswith("workers: forked from its zygote;")
    _spawn_one(backend, tmp_path)
    assert backend.zygote_running() is True
    assert backend.zygote_running(runtime_root.runtime) is True
    assert backend.zygote_running("python2.7") is False  # no such interpreter here
    assert doctor._worker_start(backend).startswith("workers: forked from the runtime zygote;")


def test_without_a_zygote_every_worker_starts_an_interpreter(runtime_root, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("runs the namespaced backend as root")
    backend = NamespacedBackend(runtime_root, zygote=False, netns_pool=0)
    try:
        assert backend.zygote_enabled is False
        assert runtime_setup.how_workers_start(runtime_root, backend).startswith("workers: an interpreter per sandbox;")
        _spawn_one(backend, tmp_path)
        assert backend.zygote_running() is False
        assert doctor._worker_start(backend).startswith("workers: an interpreter started per sandbox;")
    finally:
        backend.close()
