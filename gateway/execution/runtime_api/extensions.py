"""The Extensions API (2020-01-01) and the Telemetry API's subscriptions
(2022-07-01) for one execution environment. Sans-IO.

Extensions are programs in /opt/extensions (external) or parts of the
runtime's own process (internal) that register, then loop on `event/next`:
it returns INVOKE when a call starts and SHUTDOWN when the environment is
reclaimed, and calling it again says the extension is done with the last
event. The rules are the Runtime Interface Emulator's:

- `register` (Lambda-Extension-Name; body {"events": [...]}) answers an
  identifier (Lambda-Extension-Identifier) that every later request must
  carry, and {"functionName", "functionVersion", "handler"} (+ "accountId"
  with Lambda-Extension-Accept-Feature: accountId). An external extension
  registers under its file's name, once; any other name is internal, and
  may register only until init is over and not for SHUTDOWN.
- the first `event/next` says the extension's init is done; init is over
  once the runtime and every registered extension have asked for their
  next event. After a call, the call is over for the environment only
  when every extension registered for INVOKE has asked again.
- `init/error` and `exit/error` (with Lambda-Extension-Function-Error-Type)
  report a failure: the environment is reset (Extension.InitError,
  Extension.ExitError).
- PUT /2022-07-01/telemetry subscribes the extension's listener to the
  platform's, the function's and extensions' telemetry (telemetry.py
  checks the request); only during init, as the emulator allows.

Misuse gets 403 with the emulator's error types (Extension.MissingExtension
Identifier, Extension.UnknownExtensionIdentifier, Extension.InvalidExtension
State, ...). Nothing here touches a socket or a clock: the pool hands in
events (invoke(), shutdown()) and reads the state; what only the trio side
can act on comes back as outputs.
"""

from __future__ import annotations

import json
import uuid

from . import state, telemetry, wire
from .extension_agents import Agent, AgentState, transition_refused
from .outputs import PROGRESS, AgentFailed, Close, Registered, Send, Subscribed

API = "/2020-01-01/extension"
REGISTER_PATH = API + "/register"
NEXT_PATH = API + "/event/next"
INIT_ERROR_PATH = API + "/init/error"
EXIT_ERROR_PATH = API + "/exit/error"
TELEMETRY_PATH = "/2022-07-01/telemetry"
LOGS_PATH = "/2020-08-15/logs"  # the Logs API, which the Telemetry API replaced
PREFIXES = (API + "/", TELEMETRY_PATH, LOGS_PATH)

NAME_HEADER = "lambda-extension-name"
ID_HEADER = "lambda-extension-identifier"
ERROR_TYPE_HEADER = "lambda-extension-function-error-type"
FEATURES_HEADER = "lambda-extension-accept-feature"

MAX_EXTENSIONS = 10  # AWS's limit per function
MAX_BODY = 64 * 1024  # register and subscribe bodies are a few hundred bytes
MAX_DRAIN = 1024 * 1024  # what is read and dropped past MAX_BODY before the connection is closed
INTERNAL_EVENTS = ("INVOKE",)
EXTERNAL_EVENTS = ("INVOKE", "SHUTDOWN")

# The platform's names for an extension that failed.
INIT_ERROR = "Extension.InitError"
EXIT_ERROR = "Extension.ExitError"
CRASH = "Extension.Crash"


# -- the rules -----------------------------------------------------------------

_REGISTER, _NEXT, _INIT_ERROR, _EXIT_ERROR, _SUBSCRIBE, _REFUSED = range(6)


class _Reading:
    __slots__ = ("kind", "head", "parts", "size", "refusal", "agent")

    def __init__(self, kind: int, head: wire.Head, refusal: bytes = b"", agent: Agent | None = None) -> None:
        self.kind = kind
        self.head = head
        self.parts: list[bytes] = []
        self.size = 0
        self.refusal = refusal
        self.agent = agent


def _forbidden(error_type: str, message: str) -> bytes:
    return wire.error_reply(403, error_type, message)


class ExtensionsApi:
    def __init__(self, external: list[str], *, function_name: str, function_version: str, handler: str, account_id: str) -> None:
        """external: the names of the programs started from /opt/extensions."""
        self.agents: dict[str, Agent] = {}  # by identifier, once registered
        self._by_name: dict[str, Agent] = {name: Agent(name, True) for name in external}
        self._metadata = {"functionName": function_name, "functionVersion": function_version, "handler": handler}
        self._account = account_id
        self.init_done = False  # registration and subscription close
        self.shutting_down = False
        self.failure: AgentFailed | None = None  # the first failure reported
        self._reading: dict[int, _Reading] = {}
        self._event: dict | None = None  # the INVOKE or SHUTDOWN being handed out
        self.subscribed: list[Subscribed] = []

    # -- what the host asks -----------------------------------------------------

    def parked(self, conn: int) -> bool:
        return any(a.parked is not None and a.parked[0] == conn for a in self.agents.values())

    def registered(self) -> bool:
        """Every external extension has registered (or failed)."""
        return all(a.state is not AgentState.LAUNCHED or a.failed for a in self._by_name.values() if a.external)

    def pending_external(self) -> list[str]:
        return [a.name for a in self._by_name.values() if a.external and a.state is AgentState.LAUNCHED and not a.failed]

    def ready(self) -> bool:
        """Every registered extension has finished with its last event
        (init, or the last call): it waits in `next` or has failed."""
        return all(not a.owes or a.failed for a in self.agents.values())

    def registrations(self) -> list[Agent]:
        return list(self.agents.values())

    def close_init(self) -> None:
        """Init is over: no more registrations or subscriptions."""
        self.init_done = True

    def forget(self, name: str) -> None:
        """The extension's process is gone: nothing waits for it any more."""
        agent = self._by_name.get(name)
        if agent is not None:
            agent.failed = True
            agent.parked = None

    def invoke(self, request_id: str, deadline_ms: int, invoked_arn: str, trace_id: str) -> list:
        """A call starts: INVOKE to each extension registered for it."""
        return self._broadcast(
            "INVOKE",
            {
                "eventType": "INVOKE",
                "deadlineMs": deadline_ms,
                "requestId": request_id,
                "invokedFunctionArn": invoked_arn,
                "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id},
            },
        )

    def shutdown(self, reason: str, deadline_ms: int) -> list:
        """The environment is being reclaimed: SHUTDOWN to each extension
        registered for it (spindown, timeout or failure)."""
        self.shutting_down = True
        return self._broadcast("SHUTDOWN", {"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline_ms})

    def _broadcast(self, event_type: str, doc: dict) -> list:
        out: list = []
        for agent in self.agents.values():
            if event_type not in agent.events or agent.failed:
                continue
            agent.pending = json.dumps(doc, separators=(",", ":")).encode()
            agent.owes = True
            out += self._deliver(agent)
        return out

    def _deliver(self, agent: Agent) -> list:
        if agent.pending is None or agent.parked is None:
            return []
        conn, close = agent.parked
        agent.parked = None
        body, agent.pending = agent.pending, None
        agent.state = AgentState.RUNNING
        data = wire.reply(200, body).replace(b"\r\n", f"\r\nLambda-Extension-Event-Identifier: {uuid.uuid4()}\r\n".encode(), 1)
        return [Send(conn, data, close=close)]

    # -- what extensions send -------------------------------------------------------

    def receive(self, conn: int, event) -> list:
        kind = type(event)
        if kind is wire.Whole:
            out = self._head(conn, event.head)
            for part in event.parts:
                if conn not in self._reading:
                    return out
                out += self._data(conn, part)
            if conn in self._reading:
                out += self._end(conn)
            return out
        if kind is wire.Data:
            return self._data(conn, event.data)
        if kind is wire.End:
            return self._end(conn)
        return self._head(conn, event.head)

    def closed(self, conn: int) -> list:
        self._reading.pop(conn, None)
        for agent in self.agents.values():
            if agent.parked is not None and agent.parked[0] == conn:
                # Its `next` is gone, not its obligation: it must ask again.
                agent.parked = None
        return []

    def _agent(self, head: wire.Head) -> Agent | bytes:
        value = head.header(ID_HEADER)
        if not value:
            return _forbidden("Extension.MissingExtensionIdentifier", "Missing Lambda-Extension-Identifier header")
        try:
            ident = str(uuid.UUID(value))
        except ValueError:
            return _forbidden("Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier")
        agent = self.agents.get(ident)
        if agent is None:
            return _forbidden("Extension.UnknownExtensionIdentifier", f"Unknown extension {ident}")
        return agent

    def _head(self, conn: int, head: wire.Head) -> list:
        path, method = head.path, head.method
        routes = {
            REGISTER_PATH: ("POST", _REGISTER),
            NEXT_PATH: ("GET", _NEXT),
            INIT_ERROR_PATH: ("POST", _INIT_ERROR),
            EXIT_ERROR_PATH: ("POST", _EXIT_ERROR),
            TELEMETRY_PATH: ("PUT", _SUBSCRIBE),
            LOGS_PATH: ("PUT", _SUBSCRIBE),
        }
        route = routes.get(path)
        if route is None:
            reading = _Reading(_REFUSED, head, refusal=state.NOT_FOUND)
        elif method != route[0]:
            reading = _Reading(_REFUSED, head, refusal=state.NOT_ALLOWED_METHOD)
        elif route[1] == _REGISTER:
            reading = _Reading(_REGISTER, head)
        else:
            agent = self._agent(head)
            if isinstance(agent, bytes):
                reading = _Reading(_REFUSED, head, refusal=agent)
            elif path == LOGS_PATH:
                reading = _Reading(
                    _REFUSED,
                    head,
                    refusal=wire.error_reply(
                        400,
                        "Logs.NotSupported",
                        "The Logs API is not supported by this server; subscribe with the Telemetry API (/2022-07-01/telemetry)",
                    ),
                )
            else:
                reading = _Reading(route[1], head, agent=agent)
        if reading.kind != _REFUSED and not head.chunked and head.content_length > MAX_BODY:
            reading.refusal = wire.error_reply(413, "RequestEntityTooLarge", f"Request body over {MAX_BODY} bytes")
        self._reading[conn] = reading
        return []

    def _data(self, conn: int, data: bytes) -> list:
        reading = self._reading[conn]
        reading.size += len(data)
        if reading.size > MAX_BODY + MAX_DRAIN:
            self._reading.pop(conn, None)
            return [Close(conn)]
        if reading.refusal:
            return []
        if reading.size > MAX_BODY:
            reading.parts.clear()
            reading.refusal = wire.error_reply(413, "RequestEntityTooLarge", f"Request body over {MAX_BODY} bytes")
            return []
        reading.parts.append(data)
        return []

    def _end(self, conn: int) -> list:
        reading = self._reading.pop(conn)
        close = not reading.head.keep_alive
        if reading.refusal:
            return [Send(conn, reading.refusal, close=close)]
        body = b"".join(reading.parts)
        kind = reading.kind
        if kind == _REGISTER:
            return self._register(conn, reading.head, body, close)
        agent = reading.agent
        assert agent is not None
        if kind == _NEXT:
            return self._next(conn, agent, close)
        if kind == _SUBSCRIBE:
            return self._subscribe(conn, agent, body, close)
        return self._error(conn, agent, reading.head, kind, close)

    def _register(self, conn: int, head: wire.Head, body: bytes, close: bool) -> list:
        name = head.header(NAME_HEADER) or ""
        if not name:
            return [Send(conn, _forbidden("Extension.InvalidExtensionName", "Empty extension name"), close=close)]
        try:
            doc = json.loads(body or b"{}")
            if not isinstance(doc, dict):
                raise ValueError("expected an object")
            if doc.get("configurationKeys"):
                raise ValueError("configurationKeys are deprecated; use environment variables instead")
            events = doc.get("events", [])
            if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
                raise ValueError("events must be a list of strings")
        except ValueError as exc:
            return [Send(conn, _forbidden("InvalidRequestFormat", str(exc)), close=close)]
        agent = self._by_name.get(name)
        external = agent is not None and agent.external
        allowed = EXTERNAL_EVENTS if external else INTERNAL_EVENTS
        for event in events:
            if event not in allowed:
                why = "unknown event" if event not in EXTERNAL_EVENTS else "internal extensions cannot register for it"
                return [Send(conn, _forbidden("Extension.InvalidEventType", f"{event}: {why}"), close=close)]
        if agent is None:
            if self.init_done:
                return [Send(conn, _forbidden("Extension.RegistrationClosed", "Extension registration closed already"), close=close)]
            if len(self._by_name) >= MAX_EXTENSIONS:
                return [Send(conn, _forbidden("Extension.TooManyExtensions", f"Extension limit ({MAX_EXTENSIONS}) reached"), close=close)]
            agent = self._by_name[name] = Agent(name, False)
        elif agent.state is not AgentState.LAUNCHED:
            why = "Extension with this name already registered" if not external else "State transition is not allowed"
            return [Send(conn, transition_refused(agent, AgentState.REGISTERED.value, why), close=close)]
        agent.id = str(uuid.uuid4())
        agent.events = tuple(dict.fromkeys(events))
        agent.state = AgentState.REGISTERED
        agent.owes = True  # until its first `next`: init waits for it
        self.agents[agent.id] = agent
        answer = dict(self._metadata)
        features = {f.strip() for f in (head.header(FEATURES_HEADER) or "").split(",")}
        if "accountId" in features:
            answer["accountId"] = self._account
        reply = wire.reply(200, json.dumps(answer, separators=(",", ":")).encode())
        reply = reply.replace(b"\r\n", f"\r\nLambda-Extension-Identifier: {agent.id}\r\n".encode(), 1)
        return [Send(conn, reply, close=close), Registered(name, agent.events), PROGRESS]

    def _next(self, conn: int, agent: Agent, close: bool) -> list:
        if agent.state in (AgentState.INIT_ERROR, AgentState.EXIT_ERROR) or agent.failed:
            return [Send(conn, transition_refused(agent, AgentState.READY.value, "State transition is not allowed"), close=close)]
        if agent.parked is not None:
            return [Send(conn, transition_refused(agent, AgentState.READY.value, "a next request is already waiting"), close=close)]
        agent.state = AgentState.READY
        agent.owes = False
        agent.parked = (conn, close)
        return self._deliver(agent) + [PROGRESS]

    def _subscribe(self, conn: int, agent: Agent, body: bytes, close: bool) -> list:
        if self.init_done:
            return [Send(conn, _forbidden("Telemetry.SubscriptionClosed", "Telemetry API subscription is closed"), close=close)]
        try:
            subscription = telemetry.parse_subscription(body)
        except telemetry.SubscriptionError as exc:
            return [Send(conn, wire.error_reply(400, "ValidationError", str(exc)), close=close)]
        done = Subscribed(agent.name, subscription)
        self.subscribed.append(done)
        return [Send(conn, wire.reply(200, b'"OK"'), close=close), done]

    def _error(self, conn: int, agent: Agent, head: wire.Head, kind: int, close: bool) -> list:
        reported = head.header(ERROR_TYPE_HEADER)
        if not reported:
            return [Send(conn, _forbidden("Extension.MissingHeader", "Lambda-Extension-Function-Error-Type not found"), close=close)]
        if kind == _INIT_ERROR:
            if self.init_done or agent.state not in (AgentState.REGISTERED,):
                return [Send(conn, transition_refused(agent, AgentState.INIT_ERROR.value, "State transition is not allowed"), close=close)]
            agent.state, error_type = AgentState.INIT_ERROR, INIT_ERROR
        else:
            if agent.state in (AgentState.INIT_ERROR, AgentState.EXIT_ERROR):
                return [Send(conn, transition_refused(agent, AgentState.EXIT_ERROR.value, "State transition is not allowed"), close=close)]
            agent.state, error_type = AgentState.EXIT_ERROR, EXIT_ERROR
        agent.failed = True
        failure = AgentFailed(agent.name, error_type, reported[:256])
        if self.failure is None:
            self.failure = failure
        return [Send(conn, wire.ACCEPTED, close=close), failure, PROGRESS]


def is_extension_path(path: str) -> bool:
    return path.startswith(PREFIXES)
