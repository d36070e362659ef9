"""Who is online, across API instances: the pure bookkeeping behind presence frames.

Each instance holds a user online while at least one of the user's sockets on it is open,
and for `grace_s` after the last one closes (a page reload or a network blip must not
flap presence). It tells the others on the ephemeral signals topic: `online` and `offline`
when its hold starts and ends, and a heartbeat listing everyone it holds every few
seconds. An instance that dies sends nothing more, so what it held expires `ttl_s` after its
last heartbeat. A user is online while any instance holds them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable


class PresenceBoard:
    def __init__(
        self,
        instance: str,
        grace_s: float,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.instance = instance
        self.grace_s = grace_s
        self.ttl_s = ttl_s
        self.clock = clock
        self._sockets: Counter[str] = Counter()
        self._lingering: dict[str, float] = {}
        self._remote: dict[str, dict[str, float]] = {}
        self._reported: set[str] = set()
        self._touched: set[str] = set()

    # -- this instance ----------------------------------------------------------------------------

    def opened(self, user: str) -> bool:
        """A socket of ``user`` opened here; True when this instance starts holding them."""
        self._sockets[user] += 1
        self._touched.add(user)
        was_lingering = self._lingering.pop(user, None) is not None
        return self._sockets[user] == 1 and not was_lingering

    def closed(self, user: str) -> None:
        if self._sockets[user] <= 0:
            return
        self._sockets[user] -= 1
        if self._sockets[user] == 0:
            del self._sockets[user]
            self._lingering[user] = self.clock() + self.grace_s

    def release_due(self) -> list[str]:
        """Users whose grace ran out: this instance no longer holds them (tell the others)."""
        now = self.clock()
        due = [user for user, until in self._lingering.items() if until <= now]
        for user in due:
            del self._lingering[user]
            self._touched.add(user)
        return due

    def held(self) -> list[str]:
        """Everyone this instance holds online, for its heartbeat."""
        return sorted({*self._sockets, *self._lingering})

    def has_sockets(self, user: str) -> bool:
        return self._sockets[user] > 0

    # -- the other instances ----------------------------------------------------------------------

    def remote_online(self, instance: str, users: Iterable[str], age_s: float = 0.0) -> None:
        """``instance`` holds ``users`` (as of ``age_s`` ago: replayed signals count less)."""
        until = self.clock() + self.ttl_s - age_s
        if until <= self.clock():
            return
        held = self._remote.setdefault(instance, {})
        for user in users:
            held[user] = until
            self._touched.add(user)

    def remote_offline(self, instance: str, user: str) -> None:
        held = self._remote.get(instance)
        if held is not None and held.pop(user, None) is not None:
            self._touched.add(user)

    def remote_gone(self, instance: str) -> None:
        """The instance shut down cleanly: nothing it held counts any more."""
        self._touched.update(self._remote.pop(instance, {}))

    def expire(self) -> None:
        now = self.clock()
        for instance, held in list(self._remote.items()):
            for user in [u for u, until in held.items() if until <= now]:
                del held[user]
                self._touched.add(user)
            if not held:
                del self._remote[instance]

    # -- the answer -------------------------------------------------------------------------------

    def is_online(self, user: str) -> bool:
        if self._sockets[user] > 0 or user in self._lingering:
            return True
        now = self.clock()
        return any(held.get(user, 0.0) > now for held in self._remote.values())

    def changes(self) -> list[tuple[str, bool]]:
        """(user, online) for each user whose presence changed since the last call, in name
        order; a flap that ended where it started is no change."""
        changed: list[tuple[str, bool]] = []
        for user in sorted(self._touched):
            online = self.is_online(user)
            if online != (user in self._reported):
                changed.append((user, online))
                if online:
                    self._reported.add(user)
                else:
                    self._reported.discard(user)
        self._touched.clear()
        return changed
