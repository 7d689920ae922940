"""The sandbox backend and the runtime roots a Lambdalet starts with."""

from __future__ import annotations

import pathlib

from lambdalet.sandbox import select as sandbox_select
from lambdalet.sandbox.process import ProcessBackend
from lambdalet.sandbox.runtime_root import RuntimeRoot
from lambdalet.sandbox.spec import SandboxBackend

from ..execution import runtime_setup
from .config import ConfigError, ServerConfig, default_cache_dir
from .datadir import make_private


def choose_backend(config: ServerConfig, root: RuntimeRoot, data_dir: pathlib.Path, runtimes: dict[str, RuntimeRoot] | None = None):
    """Returns (backend, warnings). Functions run unisolated only when the
    operator asked for it (--sandbox process); a host where no sandbox can
    start is a ConfigError that says why and how to fix it. runtimes: the
    other interpreters' roots, by runtime name."""
    if config.sandbox == "process":
        return ProcessBackend(root, runtimes), [
            f"sandbox: plain processes ({sandbox_select.UNISOLATED_OPTION}) — functions are NOT isolated from this host"
        ]
    try:
        return sandbox_select.choose_backend(root, data_dir, zygote=config.zygote, tasks_max=config.tasks_max, runtimes=runtimes)
    except sandbox_select.SandboxUnavailable as exc:
        raise ConfigError(str(exc)) from None


def open_backend(config: ServerConfig, data_dir: pathlib.Path) -> tuple[runtime_setup.ServerRuntimes, SandboxBackend, list[str]]:
    """The interpreters' runtime roots, the backend, and the warnings the
    start-up lines print. Raises ConfigError for settings that cannot be
    honoured."""
    try:
        runtimes = runtime_setup.prepare(data_dir, default_cache_dir(), config.pythons, config.runtime_map)
    except ValueError as exc:  # a --python or --runtime-map that cannot be honoured
        raise ConfigError(str(exc)) from None
    # What the stores just created, and what earlier versions left.
    make_private(data_dir)
    backend, warnings = choose_backend(config, runtimes.default, data_dir, runtimes.others)
    try:
        runtime_setup.write_state(data_dir, runtimes)
    except OSError as exc:
        # Only for `lambdalet doctor`; a full disk must not keep the server
        # (and the API that frees space) from starting.
        warnings.append(f"cannot write {runtime_setup.STATE_FILE} for `lambdalet doctor`: {exc.strerror}")
    return runtimes, backend, warnings
