"""One extension as the Extensions API tracks it. Sans-IO.

An extension is launched (an external one, from /opt/extensions) or not
known yet (an internal one), registers, then loops on `event/next`: it is
READY while it waits, RUNNING once handed an event, and owes the platform
a `next` until it has finished with that event. init/error and exit/error
end its loop. The state names are the emulator's: they appear in 403
messages (transition_refused()).
"""

from __future__ import annotations

import enum

from . import wire


class AgentState(enum.Enum):
    # The emulator's state names: they appear in 403 messages.
    LAUNCHED = "Launched"
    REGISTERED = "Registered"
    READY = "Ready"
    RUNNING = "Running"
    INIT_ERROR = "InitError"
    EXIT_ERROR = "ExitError"


class Agent:
    """One extension: what it registered for, and where it is in its loop."""

    __slots__ = ("id", "name", "external", "events", "state", "parked", "pending", "owes", "failed")

    def __init__(self, name: str, external: bool) -> None:
        self.id = ""
        self.name = name
        self.external = external
        self.events: tuple[str, ...] = ()
        self.state = AgentState.LAUNCHED
        self.parked: tuple[int, bool] | None = None  # (connection, close after the answer) of its waiting `next`
        self.pending: bytes | None = None  # an event rendered for it, not handed out yet
        self.owes = False  # handed an event it has not finished with (it has not asked for the next one)
        self.failed = False


def transition_refused(agent: Agent, to: str, why: str) -> bytes:
    """The 403 for a request the extension's state does not allow, in the
    emulator's words."""
    return wire.error_reply(
        403,
        "Extension.InvalidExtensionState",
        f"State transition from {agent.state.value} to {to} failed for extension {agent.name}. Error: {why}",
    )
