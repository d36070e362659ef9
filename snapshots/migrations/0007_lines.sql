-- The lines of the ticketing read side (the online waitlist and the waiting room), folded from
-- the show journal by the same projection as the catalogue and orders, in the same
-- transaction, so each show's line rows are at its `shows.version`. Every write is guarded by
-- the stream version: a redelivered batch changes nothing.

-- Per show: its waiting room as created (NULL: sells to all) and the seed that orders the
-- early joiners (private until queue.opens_at: the API publishes it only from then), plus
-- the line's counters: entries waiting now, and entries ever made (the last `seq`).
CREATE TABLE show_lines (
    show_id    text PRIMARY KEY,
    queue      jsonb,
    queue_seed text NOT NULL,
    waiting    bigint NOT NULL,
    joins      bigint NOT NULL,
    version    bigint NOT NULL
);

-- Every waitlist entry ever made. `seq` is its join ordinal in the show's line (1, 2, ... in
-- journal order): an API instance loads a show's entries in `seq` order into an
-- order-statistics tree, which answers a position in O(log n) and is kept current from the
-- journal; nothing counts rows per request.
CREATE TABLE waitlist_entries (
    entry_id       text PRIMARY KEY,
    show_id        text NOT NULL,
    seq            bigint NOT NULL,
    username       text NOT NULL,
    quantity       integer NOT NULL,
    section        text,
    zone           text,
    offer_order_id text NOT NULL,
    status         text NOT NULL,
    order_id       text,
    joined_at      timestamptz NOT NULL,
    version        bigint NOT NULL,
    UNIQUE (show_id, seq)
);

-- Every fan in a waiting room. `position` is fixed for later joiners (journal order after
-- every early one) and NULL for early ones, whose order the seed gives at opens_at.
CREATE TABLE queue_members (
    show_id   text NOT NULL,
    username  text NOT NULL,
    early     boolean NOT NULL,
    position  bigint,
    joined_at timestamptz NOT NULL,
    version   bigint NOT NULL,
    PRIMARY KEY (show_id, username)
);
CREATE INDEX queue_members_in_order ON queue_members (show_id, version);
