"""Lambdalet: a self-hosted AWS Lambda, embeddable in a trio program.

    import lambdalet

    async with lambdalet.Lambdalet(data_dir="...") as lam:   # inside trio.run
        await lam.deploy("hello", "path/to/code", handler="app.handler")
        result = await lam.invoke("hello", {"x": 1})

This file is the installed `lambdalet` package's __init__.py.
pyproject.toml maps the package "lambdalet" to this folder (package-dir),
and lambdalet.gateway, .sandbox, .runtime and .csrc to the top-level
folders, so the owner's layout keeps no lambdalet/ folder at the top of
the repository and a user's function may still ship its own gateway.py or
runtime.py. It holds nothing but this file; it imports by absolute name,
so it means the same whether it is reached as `lambdalet` or by its path
under gateway/app/.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lambdalet.gateway.app.config import ConfigError, ServerConfig
    from lambdalet.gateway.app.root import InvokeResult, Lambdalet
    from lambdalet.gateway.errors import LambdaError

__all__ = ["ConfigError", "InvokeResult", "LambdaError", "Lambdalet", "ServerConfig"]

# Loaded on first use (PEP 562): every module under lambdalet.* runs this
# file first, and the server's composition root costs ~0.8 s of CPU to
# import; a process that needs one room (the export's worker, a sandbox's
# runtime, the CLI's client commands) should not pay it.
_WHERE = {
    "ConfigError": "lambdalet.gateway.app.config",
    "ServerConfig": "lambdalet.gateway.app.config",
    "InvokeResult": "lambdalet.gateway.app.root",
    "Lambdalet": "lambdalet.gateway.app.root",
    "LambdaError": "lambdalet.gateway.errors",
}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lambdalet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
