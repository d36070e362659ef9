-- The deciders' snapshots: the state of every stream of one event-journal partition, as
-- folded up to (and including) the event at last_offset, so a rebuild reads only the events
-- after it. One row per partition, replaced by a newer one; the journal stays the truth and a
-- snapshot that fails any check (code fingerprint, seal, the journal's event at last_offset)
-- is ignored in favour of a full fold.
CREATE TABLE decider_snapshots (
    events_topic text NOT NULL,
    partition    integer NOT NULL,
    last_offset  bigint NOT NULL,
    -- sha256 of the event record at last_offset: proves the journal is the one folded.
    last_digest  bytea NOT NULL,
    -- The code that folded the state (domain sources and Python version): other code rebuilds.
    fingerprint  text NOT NULL,
    state        bytea NOT NULL,
    -- HMAC-SHA256 of everything above under a key derived from the token secret: only this
    -- installation's deciders can write a state that is loaded.
    seal         bytea NOT NULL,
    streams      integer NOT NULL,
    taken_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (events_topic, partition)
);
