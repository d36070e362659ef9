"""The chat versions this API instance has seen, for reads that must see its callers' writes.

The REST reads come from the projection, which trails the journal by a few milliseconds; the
versions seen in any API process's replies and in the event hub let a read wait, briefly,
until the projection has caught up with them.
"""

from __future__ import annotations

from collections import OrderedDict

from producers.envelope import Reply
from producers.registries import CONVERSATIONS, SOCIAL

# Bounded: the least recently advanced streams are forgotten first (a read then waits for
# nothing, as it would on an instance that never saw them).
KNOWN_VERSIONS = 200_000


class SeenVersions:
    def __init__(self) -> None:
        self._conversations: OrderedDict[str, int] = OrderedDict()
        self._social: OrderedDict[str, int] = OrderedDict()

    def saw(self, conversation_id: str, version: int) -> None:
        _remember(self._conversations, conversation_id, version)

    def saw_social(self, user: str, version: int) -> None:
        _remember(self._social, user, version)

    def known_version(self, conversation_id: str) -> int:
        return self._conversations.get(conversation_id, 0)

    def known_social_version(self, user: str) -> int:
        return self._social.get(user, 0)

    def on_reply(self, reply: Reply) -> None:
        """Any API process's decision: the versions its caller may read next through this one."""
        if not reply.ok or not reply.events:
            return
        kind = reply.events[-1].get("type")
        if kind in CONVERSATIONS:
            self.saw(reply.stream_id, reply.version)
        elif kind in SOCIAL:
            self.saw_social(reply.stream_id, reply.version)


def _remember(versions: OrderedDict[str, int], key: str, version: int) -> None:
    if versions.get(key, 0) < version:
        versions[key] = version
        versions.move_to_end(key)
        if len(versions) > KNOWN_VERSIONS:
            versions.popitem(last=False)
