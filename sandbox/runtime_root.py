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

import msgspec

import lambdalet.runtime


def python_executable() -> str:
    # PATH's python3 may be a shim costing ~100 ms a start (DESIGN.md).
    return os.path.realpath(sys.executable)


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
        for rel, src in root.sources.items():
            link = path / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                if link.is_symlink() and os.readlink(link) == str(src):
                    continue
                link.unlink()
            link.symlink_to(src, target_is_directory=True)
        return root
