"""The directory a worker's interpreter imports the runtime from.

A worker runs `python -I -S`, so it sees neither site-packages nor the
editable-install finder. This directory holds exactly what the runtime
needs — lambdalet/runtime and msgspec — as symlinks, and nothing else of
the host's packages. Sandboxed backends bind-mount it at /var/runtime,
where AWS keeps its own runtime.
"""
from __future__ import annotations

import os
import pathlib
import sys

import _cffi_backend
import msgspec

import lambdalet.csrc
import lambdalet.runtime


def python_executable() -> str:
    """The interpreter workers run: the one this process's venv was made
    from. Workers import nothing from the venv (they run -I -S, with the
    runtime's sources bound at /var/runtime), and a `venv --copies` has its
    own copy of the binary, which may sit where no sandbox can mount it
    (under /tmp). Resolved, since PATH's python3 may be a shim costing
    ~100 ms a start (DESIGN.md)."""
    base = getattr(sys, "_base_executable", "") or sys.executable
    return os.path.realpath(base if os.access(base, os.X_OK) else sys.executable)


def worker_argv(python: str, root: str, control_fd: int) -> list[str]:
    boot = (
        f"import sys;sys.path.insert(0,{root!r});"
        f"from lambdalet.runtime.worker import main;main({control_fd})"
    )
    return [python, "-I", "-S", "-B", "-c", boot]


class RuntimeRoot:
    def __init__(self, path: pathlib.Path) -> None:
        self.path = str(path)
        self.python = python_executable()
        self.sources = {
            "lambdalet/runtime": pathlib.Path(lambdalet.runtime.__file__).parent,
            "msgspec": pathlib.Path(msgspec.__file__).parent,
        }

    @classmethod
    def create(cls, path: pathlib.Path) -> "RuntimeRoot":
        root = cls(path)
        _link_tree(path, root.sources)
        return root

    def zygote_root(self) -> str:
        """A directory to put first on the zygote's sys.path (sandbox/
        zygote.py): the runtime's sources plus what starting sandboxes
        needs — nsspawn and the native module. Never mounted in a sandbox."""
        path = pathlib.Path(self.path + ".zygote")
        backend = pathlib.Path(_cffi_backend.__file__)
        _link_tree(path, {
            **self.sources,
            "lambdalet/sandbox": pathlib.Path(__file__).parent,
            "lambdalet/csrc": pathlib.Path(lambdalet.csrc.__file__).parent,
            backend.name: backend,
        })
        return str(path)


def _link_tree(path: pathlib.Path, sources: dict[str, pathlib.Path]) -> None:
    for rel, src in sources.items():
        link = path / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.is_symlink() and os.readlink(link) == str(src):
                continue
            link.unlink()
        link.symlink_to(src, target_is_directory=src.is_dir())
