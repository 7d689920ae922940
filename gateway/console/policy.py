"""Whether the console is served, on which port, and why not.

A sign-in sends the access key's secret (or the console password), and the
session cookie then stands for it: on a loopback address nothing crosses a
network, and with TLS nothing crosses it in clear. Anywhere else the console
stays off unless the operator asks for it (--console on), and every answer
at /console and the start-up lines say why.
"""

from __future__ import annotations

import msgspec

MODES = ("auto", "on", "off")


class ConsolePolicy(msgspec.Struct, frozen=True, kw_only=True):
    plain: bool  # served on the plain HTTP port
    tls: bool  # served on the TLS port
    plain_note: str = ""  # why not on the plain port, or the risk taken there
    tls_note: str = ""

    def note(self, secure: bool) -> str:
        return self.tls_note if secure else self.plain_note

    def served(self, secure: bool) -> bool:
        return self.tls if secure else self.plain


def decide(mode: str, host: str, loopback: bool, tls_url: str | None) -> ConsolePolicy:
    """tls_url: the TLS port's base URL, when the server has one."""
    if mode not in MODES:
        raise ValueError(f"--console must be one of {', '.join(MODES)}, got {mode!r}")
    has_tls = tls_url is not None
    if mode == "off":
        why = "the console is turned off (--console off)"
        return ConsolePolicy(plain=False, tls=False, plain_note=why, tls_note=why)
    if loopback:
        return ConsolePolicy(plain=True, tls=has_tls)
    if mode == "on":
        risk = (
            f"the console is served over plain HTTP on {host}, which is not a loopback address (--console on): "
            "sign-ins and session cookies cross the network in clear"
        )
        return ConsolePolicy(plain=True, tls=has_tls, plain_note=risk)
    if has_tls:
        return ConsolePolicy(
            plain=False,
            tls=True,
            plain_note=f"on {host}, which is not a loopback address, the console is served over TLS only: {tls_url}/console",
        )
    why = (
        f"the console is off: the server listens on {host}, which is not a loopback address, without TLS, so a sign-in "
        "would cross the network in clear; serve TLS (--tls-port, --tls-cert, --tls-key) or pass --console on"
    )
    return ConsolePolicy(plain=False, tls=False, plain_note=why, tls_note=why)


def banner_lines(policy: ConsolePolicy, plain_url: str, tls_url: str | None) -> list[str]:
    lines = []
    if policy.plain:
        lines.append(f"console: {plain_url}/console")
    if policy.tls and tls_url is not None:
        lines.append(f"console: {tls_url}/console")
    if not policy.plain and not policy.tls:
        lines.append(f"console: off. {policy.plain_note}")
    elif policy.plain_note:
        lines.append(f"WARNING {policy.plain_note}" if policy.plain else f"console: {policy.plain_note}")
    return lines
