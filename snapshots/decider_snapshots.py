"""The deciders' snapshots: a partition's folded state in PostgreSQL, so a rebuild folds only
the events journaled after it.

The journal stays the only truth. A snapshot is an optimisation that must prove it belongs to
this journal, this code and this installation before it is used, and is ignored otherwise
(the rebuild then folds the whole partition, as it always could):

- `last_digest`: the sha256 of the event record at `last_offset`; the loader reads that one
  record back from Kafka and compares, so a recreated topic or another cluster never matches;
- `fingerprint`: the domain code and the Python version that folded the state; any change to
  `domain/` makes every snapshot stale rather than misread;
- `seal`: an HMAC over all of it under a key derived from the installation's token secret.
  The state is a pickle (the states are mutable classes folded in place, and pickling them is
  as fast as anything hand-written); only a sealed one, which only this installation's
  deciders can have written, is ever unpickled.

Synchronous psycopg: the decider loop is a plain thread, and a snapshot is rare.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import psycopg

from boxoffice.settings import Settings
from snapshots.database import conninfo

DOMAIN = Path(__file__).resolve().parent.parent / "domain"


@cache
def fingerprint() -> str:
    """The code that gives a pickled state its meaning: every domain source, and Python."""
    digest = hashlib.sha256(sys.version.encode())
    for path in sorted(DOMAIN.rglob("*.py")):
        digest.update(path.relative_to(DOMAIN).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _key(settings: Settings) -> bytes:
    return hmac.new(
        settings.token_secret.encode(), b"boxoffice decider snapshots", hashlib.sha256
    ).digest()


def digest_of(record: bytes) -> bytes:
    return hashlib.sha256(record).digest()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of every stream of one partition, folded up to `last_offset` inclusive."""

    events_topic: str
    partition: int
    last_offset: int
    last_digest: bytes
    streams: dict[str, Any]

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    def encode(self) -> bytes:
        """The states as stored: taken in the decider's own thread, between transactions,
        because the states are folded in place."""
        return pickle.dumps(self.streams, protocol=pickle.HIGHEST_PROTOCOL)


def _seal(settings: Settings, snapshot: Snapshot, print_: str, state: bytes) -> bytes:
    mac = hmac.new(_key(settings), digestmod=hashlib.sha256)
    fields = (
        snapshot.events_topic.encode(),
        str(snapshot.partition).encode(),
        str(snapshot.last_offset).encode(),
        snapshot.last_digest,
        print_.encode(),
        state,
    )
    for field in fields:
        # Length-prefixed, so no two different rows seal the same bytes.
        mac.update(len(field).to_bytes(8, "big"))
        mac.update(field)
    return mac.digest()


def save(settings: Settings, snapshot: Snapshot, state: bytes) -> bool:
    """Store a snapshot (`state` is its `encode()`) unless a newer one is there already;
    True when it was stored."""
    print_ = fingerprint()
    seal = _seal(settings, snapshot, print_, state)
    with psycopg.connect(conninfo(settings), autocommit=True, connect_timeout=5) as conn:
        stored = conn.execute(
            "INSERT INTO decider_snapshots (events_topic, partition, last_offset, last_digest,"
            " fingerprint, state, seal, streams) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (events_topic, partition) DO UPDATE SET"
            " last_offset = excluded.last_offset, last_digest = excluded.last_digest,"
            " fingerprint = excluded.fingerprint, state = excluded.state,"
            " seal = excluded.seal, streams = excluded.streams, taken_at = now()"
            " WHERE decider_snapshots.last_offset < excluded.last_offset"
            " OR decider_snapshots.fingerprint <> excluded.fingerprint"
            " RETURNING 1",
            (
                snapshot.events_topic,
                snapshot.partition,
                snapshot.last_offset,
                snapshot.last_digest,
                print_,
                state,
                seal,
                len(snapshot.streams),
            ),
        ).fetchone()
    return stored is not None


class UnusableSnapshotError(Exception):
    """A stored snapshot that must not be used; the message says why."""


def load(settings: Settings, events_topic: str, partition: int) -> tuple[Snapshot, int] | None:
    """The partition's sealed snapshot of this code (and its size in bytes), or None if there
    is none. Raises UnusableSnapshotError for one that fails a check; the caller then folds
    the whole partition. The caller still checks `last_digest` against the journal."""
    with psycopg.connect(conninfo(settings), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT last_offset, last_digest, fingerprint, state, seal FROM decider_snapshots"
            " WHERE events_topic = %s AND partition = %s",
            (events_topic, partition),
        ).fetchone()
    if row is None:
        return None
    last_offset, last_digest, print_, state, seal = row
    if print_ != fingerprint():
        raise UnusableSnapshotError("it was folded by other code")
    found = Snapshot(events_topic, partition, last_offset, bytes(last_digest), {})
    if not hmac.compare_digest(_seal(settings, found, print_, bytes(state)), bytes(seal)):
        raise UnusableSnapshotError("its seal does not match")
    # Sealed by this installation's deciders (see above): nobody else's bytes are unpickled.
    streams = pickle.loads(state)
    return Snapshot(events_topic, partition, last_offset, bytes(last_digest), streams), len(state)
