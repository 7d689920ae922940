from __future__ import annotations

import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from lambdalet.sandbox import proc_stat  # noqa: E402
from lambdalet.sandbox.namespaced import NamespacedBackend  # noqa: E402
from lambdalet.sandbox.runtime_root import RuntimeRoot  # noqa: E402


def _require_root():
    if os.geteuid() != 0:
        pytest.skip("the namespaced backend's full isolation tests run as root")


@pytest.fixture(scope="module")
def runtime_root(tmp_path_factory) -> RuntimeRoot:
    return RuntimeRoot.create(tmp_path_factory.mktemp("runtime"))


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("code")
    (path / "app.py").write_text("def handler(event, context):\n    return {'echo': event}\n")
    # The sandbox user is "other" to the host: the tree must be world-readable.
    os.chmod(path, 0o755)
    return str(path)


@pytest.fixture(scope="module")
def backend(runtime_root):
    """One backend per module; at the end nothing of it may be left: no
    child processes and no cgroup directories."""
    _require_root()
    fds_before = _open_fds()
    be = NamespacedBackend(runtime_root)
    roots = list(be.cgroups.root_paths) if be.cgroups else []
    yield be
    be.close()
    assert [p for p in roots if os.path.exists(p)] == [], "cgroup roots left behind"
    assert _children() == [], "sandbox processes outlived their sandboxes"
    assert _open_fds() - fds_before == set(), "fds leaked by the backend"


def _open_fds() -> set[str]:
    """This process's fds with what they point at, so a reused number that
    now points elsewhere still shows."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            pass
    return out


def _children() -> list[int]:
    """Live children of this process that are a sandbox's PID 1 (they sit
    in a pid namespace of their own). Other children, such as the session's
    server, are not ours to count."""
    me = str(os.getpid())
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat.read(int(entry))
            try:
                with open(f"/proc/{entry}/status") as f:
                    nspid = [ln for ln in f if ln.startswith("NSpid:")]
            except OSError:
                continue
            if stat is None:
                continue
            nested = bool(nspid) and len(nspid[0].split()) > 2
            if str(stat.ppid) == me and stat.state != "Z" and nested:
                out.append(int(entry))
    return out


@pytest.fixture
def python(runtime_root) -> str:
    return runtime_root.python
