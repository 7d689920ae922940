"""Two of the interpreter's fork hooks, held back in the zygote until a
worker exists, then registered in the worker.

threading and logging register hooks (os.register_at_fork) that reset their
locks and thread table in a forked child. The zygote forks with one thread
(zygote.py checks) and so with none of those locks held by another thread:
in a new worker the hooks have nothing to repair, yet they run Python code
that replaces module globals and frees the zygote's lock objects, which
un-shares ~0.2 MB of pages in every worker. So the zygote starts
(boot_code) by holding the hooks these two modules register while it
imports them, and each worker registers them for real, in their original
order, before any other code of its own runs: a fork the function makes
later (os.fork, multiprocessing) runs them as in any interpreter. Any other
module's hook (random's reseeding, say) is registered at once, as usual.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

HELD_MODULES = frozenset({"threading", "logging"})

_register = os.register_at_fork
_held: list[dict[str, Callable[..., Any]]] = []


def _hold(
    *,
    before: Callable[..., Any] | None = None,
    after_in_child: Callable[..., Any] | None = None,
    after_in_parent: Callable[..., Any] | None = None,
) -> None:
    hooks = {"before": before, "after_in_child": after_in_child, "after_in_parent": after_in_parent}
    given = {when: hook for when, hook in hooks.items() if hook is not None}
    if given and all(getattr(hook, "__module__", None) in HELD_MODULES for hook in given.values()):
        _held.append(given)
    else:
        _register(**given)  # and its TypeError for a bad call


def hold() -> None:
    """In the zygote, before it imports anything else: threading's and
    logging's hooks registered from now on are kept, not registered."""
    os.register_at_fork = _hold


def stop_holding() -> None:
    """In the zygote, once it has imported what its workers share."""
    os.register_at_fork = _register


def register_held() -> None:
    """In a new worker: the hooks the zygote held, registered for real."""
    os.register_at_fork = _register
    for hooks in _held:
        _register(**hooks)


def held() -> list[str]:
    """Which modules' hooks are held (for the tests)."""
    return [next(iter(hooks.values())).__module__ for hooks in _held]
