"""Where a projection has got to in each partition of a journal: the next offset to fold.

Saved in the same transaction as the rows the folded events produced, so after a crash the
projection resumes exactly there: nothing lost, nothing folded into the rows twice.
"""

from __future__ import annotations

from collections.abc import Mapping

from snapshots.connections import Db, connection

# Every saved checkpoint NOTIFYs this channel with its topic; PostgreSQL delivers it at commit,
# so a listener (`api.settle`) learns that the rows of that batch are readable now.
PROJECTED_CHANNEL = "boxoffice_projected"


async def load_checkpoints(db: Db, projection: str, topic: str) -> dict[int, int]:
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT partition, next_offset FROM projection_offsets"
            " WHERE projection = %s AND topic = %s",
            (projection, topic),
        )
        return {partition: offset for partition, offset in await cursor.fetchall()}


async def save_checkpoints(
    db: Db,
    projection: str,
    topic: str,
    next_offsets: Mapping[int, int],
    *,
    notify: bool = True,
) -> None:
    """Move the checkpoints forward; with `notify`, wake the API's read-your-writes waiters
    when the transaction commits (for views they read, not for the reconciler's sagas)."""
    if not next_offsets:
        return
    partitions = list(next_offsets)
    async with connection(db) as conn:
        # Only forwards: a deposed owner of a partition finishing a late batch (its writes are
        # version-guarded and harmless) must not drag the checkpoint back.
        await conn.execute(
            "INSERT INTO projection_offsets (projection, topic, partition, next_offset)"
            " SELECT %s, %s, p, o FROM unnest(%s::integer[], %s::bigint[]) AS t(p, o)"
            " ON CONFLICT (projection, topic, partition) DO UPDATE"
            " SET next_offset = EXCLUDED.next_offset"
            " WHERE projection_offsets.next_offset < EXCLUDED.next_offset",
            (projection, topic, partitions, [next_offsets[p] for p in partitions]),
        )
        if notify:
            await conn.execute("SELECT pg_notify(%s, %s)", (PROJECTED_CHANNEL, topic))
