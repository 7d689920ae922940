"""Provisioned concurrency: instances kept initialised ahead of any call.

The complete set of targets (spec, instances wanted) is handed over
whenever a config changes; a task keeps each revision at its count: warm
on-demand instances are counted first (flagged provisioned), the rest are
started with AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency, and
instances past a lowered count lose the flag (and go when idle long
enough). It looks again every second too: an instance that died is
replaced. The pool's side is the Instances protocol, so the policy is
tested with a fake pool on a mock clock.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

import trio

from lambdalet.runtime.protocol import InitError, InitOk

from ..errors import LambdaError

if TYPE_CHECKING:
    from .instance import Instance
    from .outcomes import FunctionSpec

log = logging.getLogger("lambdalet.pool")

RECHECK_S = 1.0


class Instances(Protocol):
    """What provisioning asks of the pool."""

    def instances_of(self, revision: str) -> list[Instance]:
        """The revision's initialised instances, idle or busy."""

    async def start_instance(self, spec: FunctionSpec, initialization_type: str) -> tuple[Instance, InitOk | InitError]: ...

    async def destroy_instance(self, inst: Instance) -> int | None: ...

    def release_instance(self, inst: Instance) -> None:
        """An initialised instance goes to the idle ones."""


class Provisioner:
    def __init__(self, pool: Instances) -> None:
        self.pool = pool
        self.targets: dict[str, tuple[FunctionSpec, int]] = {}  # revision id -> (spec, instances wanted)
        self._changed = trio.Event()

    def set_targets(self, targets: list[tuple[FunctionSpec, int]], instances: list[Instance]) -> None:
        """The complete set of provisioned configs, as (spec, instances);
        instances: every instance the pool has, whose flag is cleared where
        its revision is no longer provisioned."""
        self.targets = {spec.record.revision_id: (spec, n) for spec, n in targets}
        for inst in instances:
            if inst.revision not in self.targets:
                inst.provisioned = False
        self._changed.set()

    def ready(self, revision: str) -> int:
        """Initialised provisioned instances of a revision, busy or idle."""
        return sum(1 for i in self.pool.instances_of(revision) if i.provisioned)

    async def run(self) -> None:
        while True:
            try:
                await self.once()
            except Exception:
                # One function's broken init must not stop the pool.
                log.exception("provisioned concurrency")
            self._changed = trio.Event()
            with trio.move_on_after(RECHECK_S):
                await self._changed.wait()

    async def once(self) -> None:
        for revision, (spec, wanted) in list(self.targets.items()):
            have = self.pool.instances_of(revision)
            flagged = [i for i in have if i.provisioned]
            # Warm on-demand instances count first; start the rest.
            for inst in have:
                if len(flagged) >= wanted:
                    break
                if not inst.provisioned:
                    inst.provisioned = True
                    flagged.append(inst)
            for inst in flagged[wanted:]:
                inst.provisioned = False
            while len(flagged) < wanted and revision in self.targets:
                try:
                    inst, reply = await self.pool.start_instance(spec, "provisioned-concurrency")
                except LambdaError as exc:
                    log.warning("provisioned concurrency for %s: %s", spec.record.name, exc.message)
                    break
                if isinstance(reply, InitError):
                    await self.pool.destroy_instance(inst)
                    log.warning("provisioned concurrency for %s: init failed: %s", spec.record.name, reply.error_type)
                    break
                inst.provisioned = True
                # Initialised ahead of any call: no call reports its Init Duration.
                inst.used = True
                self.pool.release_instance(inst)
                flagged.append(inst)
