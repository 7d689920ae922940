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
from lambdalet.gateway.app.config import ConfigError, ServerConfig
from lambdalet.gateway.app.root import InvokeResult, Lambdalet
from lambdalet.gateway.errors import LambdaError

__all__ = ["ConfigError", "InvokeResult", "LambdaError", "Lambdalet", "ServerConfig"]
