from __future__ import annotations

import itertools
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from helpers import ServerProcess, make_zip, still_running  # noqa: E402

_names = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("data")).start()
    yield srv
    procs = srv.descendants()
    code = srv.stop()
    assert code == 0, "".join(srv.output)
    assert still_running(procs) == set(), "workers outlived the server"


@pytest.fixture(scope="session")
def lam(server):
    return server.client()


@pytest.fixture
def fn_name(request):
    """A unique function name per test."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    return f"{base}-{next(_names)}"


ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"


@pytest.fixture
def deploy(lam, fn_name):
    """Creates a Python function from {filename: source} and waits until Active."""

    def _deploy(files: dict, handler: str = "app.handler", name: str | None = None, **kwargs):
        name = name or fn_name
        kwargs.setdefault("Runtime", f"python{sys.version_info[0]}.{sys.version_info[1]}")
        lam.create_function(FunctionName=name, Role=ROLE, Handler=handler, Code={"ZipFile": make_zip(files)}, **kwargs)
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        return name

    return _deploy
