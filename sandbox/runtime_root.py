"""The directory a worker's interpreter imports the runtime from.

A worker runs `python -I -S`, so it sees neither site-packages nor the
editable-install finder. This directory holds exactly what the runtime
needs — lambdalet/runtime and msgspec — as symlinks, and nothing else of
the host's packages. Sandboxed backends bind-mount it at /var/runtime,
where AWS keeps its own runtime.

There is one per interpreter (sandbox/interpreters.py finds them): msgspec
and cffi's backend are compiled extensions built for one Python version.
The server's own interpreter uses the server's. Another version uses the
builds that `lambdalet runtimes install` put in the cache
(`<cache>/python/<abi tag>/`, install_deps() below); without them its
workers use the runtime's pure-Python codec (runtime/msgspec_fallback.py)
and, having no cffi to start sandboxes with, no zygote of their own.
"""

from __future__ import annotations

import errno
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import _cffi_backend
import msgspec

import lambdalet.csrc
import lambdalet.runtime

from . import interpreters
from .interpreters import Interpreter

# The zygote (zygote.py) needs 3.10 or later; older workers are exec'd.
ZYGOTE_MIN_VERSION = (3, 10)
INSTALL_TIMEOUT_S = 600.0


def python_executable() -> str:
    """The interpreter workers run: the one this process's venv was made
    from. Workers import nothing from the venv (they run -I -S, with the
    runtime's sources bound at /var/runtime), and a `venv --copies` has its
    own copy of the binary, which may sit where no sandbox can mount it
    (under /tmp). Resolved, since PATH's python3 may be a shim costing
    ~100 ms a start (docs/architecture.md)."""
    return interpreters.own().path


def worker_argv(python: str, root: str, control_fd: int) -> list[str]:
    boot = f"import sys;sys.path.insert(0,{root!r});from lambdalet.runtime.worker import main;main({control_fd})"
    return [python, "-I", "-S", "-B", "-c", boot]


class RuntimeRoot:
    def __init__(self, path: pathlib.Path, interpreter: Interpreter | None = None, deps_cache: pathlib.Path | None = None) -> None:
        self.path = str(path)
        self.interpreter = interpreter or interpreters.own()
        self.runtime = self.interpreter.runtime
        # The interpreter's own path, resolved: PATH's python3 may be a shim
        # costing ~100 ms a start (docs/architecture.md).
        self.python = self.interpreter.path if interpreter is not None else python_executable()
        self.sources = {"lambdalet/runtime": pathlib.Path(lambdalet.runtime.__file__).parent}
        self._cffi_backend: pathlib.Path | None = None
        if self.interpreter.cache_tag == sys.implementation.cache_tag:
            # Same ABI as the server: its own builds load there.
            self.sources["msgspec"] = pathlib.Path(msgspec.__file__).parent
            self._cffi_backend = pathlib.Path(_cffi_backend.__file__)
        elif deps_cache is not None:
            deps = deps_dir(deps_cache, self.interpreter)
            if (deps / "msgspec" / "__init__.py").is_file():
                self.sources["msgspec"] = deps / "msgspec"
            self._cffi_backend = next(iter(sorted(deps.glob("_cffi_backend.*.so"))), None)

    @classmethod
    def create(
        cls,
        path: pathlib.Path,
        interpreter: Interpreter | None = None,
        deps_cache: pathlib.Path | None = None,
        extra_sources: dict[str, pathlib.Path] | None = None,
    ) -> RuntimeRoot:
        """extra_sources: more directories under /var/runtime (a language
        runtime's built files, gateway/execution/runtime_setup.py)."""
        root = cls(path, interpreter, deps_cache)
        root.sources.update(extra_sources or {})
        stale = pathlib.Path(path) / "msgspec"
        if "msgspec" not in root.sources and stale.is_symlink():
            stale.unlink()  # its build was removed from the cache since
        _link_tree(path, root.sources)
        return root

    @property
    def codec(self) -> str:
        """How this interpreter's workers encode frames."""
        return "msgspec" if "msgspec" in self.sources else "pure Python (runtime/msgspec_fallback.py)"

    def zygote_unavailable(self) -> str | None:
        """Why this interpreter cannot run a zygote, or None when it can."""
        version = tuple(int(p) for p in self.interpreter.version.split(".")[:2])
        if version < ZYGOTE_MIN_VERSION:
            return f"Python {self.interpreter.version}: the zygote needs 3.10 or later"
        if "msgspec" not in self.sources or self._cffi_backend is None:
            return (
                f"no msgspec and cffi built for Python {self.interpreter.version} (`lambdalet runtimes install {self.runtime}` adds them)"
            )
        return None

    def zygote_root(self) -> str:
        """A directory to put first on the zygote's sys.path (sandbox/
        zygote.py): the runtime's sources plus what starting sandboxes
        needs — nsspawn and the native module. Never mounted in a sandbox.
        Raises OSError when this interpreter cannot run a zygote."""
        why = self.zygote_unavailable()
        if why is not None:
            raise OSError(errno.ENOENT, why)
        assert self._cffi_backend is not None
        path = pathlib.Path(self.path + ".zygote")
        _link_tree(
            path,
            {
                **self.sources,
                "lambdalet/sandbox": pathlib.Path(__file__).parent,
                # A limited-API (abi3) build: it loads in every version.
                "lambdalet/csrc": pathlib.Path(lambdalet.csrc.__file__).parent,
                self._cffi_backend.name: self._cffi_backend,
            },
        )
        return str(path)


def deps_dir(cache: pathlib.Path, interpreter: Interpreter) -> pathlib.Path:
    """Where msgspec and cffi built for this interpreter's ABI live."""
    return pathlib.Path(cache) / "python" / interpreter.cache_tag


def install_deps(interpreter: Interpreter, cache: pathlib.Path, *, find_links: str | None = None, offline: bool = False) -> pathlib.Path:
    """Install msgspec and cffi for this interpreter into the cache with
    pip (its own, or the server's through `pip --python`), wheels only:
    the same versions as the server's where they exist for that Python,
    else the newest that do. find_links: a directory of wheels, for a host
    without network (offline: use nothing else). Returns the directory;
    raises OSError with pip's last words."""
    target = deps_dir(cache, interpreter)
    target.parent.mkdir(parents=True, exist_ok=True)
    pinned = [f"msgspec=={msgspec.__version__}", f"cffi=={_cffi_backend.__version__}"]
    ranges = ["msgspec>=0.18,<1", "cffi>=1.17,<3"]
    options = ["install", "--quiet", "--disable-pip-version-check", "--no-input", "--only-binary", ":all:"]
    if find_links:
        options += ["--find-links", find_links]
    if offline:
        options += ["--no-index"]
    last = ""
    for pip in ([interpreter.path, "-m", "pip"], [sys.executable, "-m", "pip", "--python", interpreter.path]):
        for requirements in (pinned, ranges):
            staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{interpreter.cache_tag}-", dir=target.parent))
            try:
                proc = subprocess.run(
                    [*pip, *options, "--target", str(staging), *requirements],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=INSTALL_TIMEOUT_S,
                )
                if proc.returncode == 0:
                    old = target.with_name(target.name + ".old")
                    shutil.rmtree(old, ignore_errors=True)
                    if target.exists():
                        target.rename(old)
                    staging.rename(target)
                    shutil.rmtree(old, ignore_errors=True)
                    return target
                last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
            except (OSError, subprocess.TimeoutExpired) as exc:
                last = str(exc)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            if "No module named pip" in last:
                break  # this interpreter has no pip: try the server's
    raise OSError(errno.EIO, f"{interpreter.runtime} ({interpreter.path}): {last}")


def _link_tree(path: pathlib.Path, sources: dict[str, pathlib.Path]) -> None:
    for rel, src in sources.items():
        link = path / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.is_symlink() and os.readlink(link) == str(src):
                continue
            link.unlink()
        link.symlink_to(src, target_is_directory=src.is_dir())
