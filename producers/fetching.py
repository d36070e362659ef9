"""How each kind of journal reader fetches, by role.

Every fetch that returns costs the broker a response and the reader a wake-up, whatever it
carries. Readers that answer people (the deciders, the API's replies and live events) fetch
at once: the broker answers as soon as one record is there. Readers that fold (the views,
the chat views, the reconciler) wait for a batch: the broker holds their fetch until
`FOLD_MIN_BYTES` have come or their wait is over, so a busy journal wakes them a few times a
second instead of once per transaction, and a quiet one still within the wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boxoffice.settings import Settings

# A fetch that found nothing waits this long for a first record (it returns at the first
# one): longer only means fewer empty answers from an idle broker.
ANSWER_MAX_WAIT_MS = 500
# What a folding reader's fetch waits for, at most its wait (settings.fold_fetch_wait_ms).
FOLD_MIN_BYTES = 256 * 1024
# The reconciler settles payments after a grace of seconds: nobody waits on its reads.
BACKGROUND_FETCH_WAIT_MS = 500


def answering_aiokafka() -> dict[str, Any]:
    """aiokafka consumer options of a reader that answers people."""
    return {"fetch_min_bytes": 1, "fetch_max_wait_ms": ANSWER_MAX_WAIT_MS}


def answering_librdkafka() -> dict[str, Any]:
    """librdkafka consumer options of a reader that answers people."""
    return {"fetch.min.bytes": 1, "fetch.wait.max.ms": ANSWER_MAX_WAIT_MS}


def folding_aiokafka(settings: Settings, wait_ms: int | None = None) -> dict[str, Any]:
    """aiokafka consumer options of a reader that folds."""
    return {
        "fetch_min_bytes": FOLD_MIN_BYTES,
        "fetch_max_wait_ms": settings.fold_fetch_wait_ms if wait_ms is None else wait_ms,
    }


@dataclass(frozen=True)
class ConsumerRole:
    """One kind of consumer of this system, as `boxoffice status` lists it."""

    component: str
    reads: str
    role: str
    fetch: str


def consumers(settings: Settings) -> tuple[ConsumerRole, ...]:
    """Every consumer the system runs, by role (one line each in `boxoffice status`)."""
    at_once = f"at the first record (else within {ANSWER_MAX_WAIT_MS} ms)"
    folding = f"{FOLD_MIN_BYTES // 1024} KiB or {settings.fold_fetch_wait_ms} ms"
    prefix = settings.topic_prefix
    return (
        ConsumerRole("deciders", f"command journals (group {prefix}.deciders)", "answers", at_once),
        ConsumerRole(
            "deciders",
            "a partition's events and rejections, on assignment (no group)",
            "rebuilds",
            "at once, to the end",
        ),
        ConsumerRole(
            "api", "replies and event journals, one per process (no group)", "answers", at_once
        ),
        ConsumerRole("api", "chat signals, one per process (no group)", "answers", at_once),
        ConsumerRole(
            "api",
            "a show's events after its snapshot, for a seat map or time travel (no group)",
            "reads",
            "at once, to the version asked",
        ),
        ConsumerRole(
            "api",
            "the deciders' committed offsets and the journals' ends, for /readyz (no fetch)",
            "watches",
            "offsets only",
        ),
        ConsumerRole("views", f"ticketing events (group {prefix}-views)", "folds", folding),
        ConsumerRole(
            "chatviews", f"chat and social events (group {prefix}-chatviews)", "folds", folding
        ),
        ConsumerRole(
            "reconciler",
            f"ticketing events (group {prefix}.reconciler)",
            "folds",
            f"{FOLD_MIN_BYTES // 1024} KiB or {BACKGROUND_FETCH_WAIT_MS} ms",
        ),
        ConsumerRole(
            "processors", f"probe commands (group {prefix}-processors)", "answers", "Faust's"
        ),
    )
