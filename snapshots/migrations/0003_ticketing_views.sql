-- The ticketing read side, folded from the show journal by `processors.views`. Every row is
-- derived from the journal alone (`boxoffice replay` rebuilds all of it), and every write is
-- guarded by the stream version, so a redelivered batch changes nothing.

-- The shows catalogue: each show as created, plus its current version and free places.
CREATE TABLE shows (
    show_id         text PRIMARY KEY,
    name            text NOT NULL,
    organizer       text NOT NULL,
    starts_at       timestamptz NOT NULL,
    hold_seconds    integer NOT NULL,
    sections        jsonb NOT NULL,
    zones           jsonb NOT NULL,
    seats_total     bigint NOT NULL,
    seats_available bigint NOT NULL,
    version         bigint NOT NULL,
    created_at      timestamptz NOT NULL,
    -- Where ShowCreated sits in the journal: time travel to a version older than every
    -- snapshot folds from here, and recovery knows which partition a show belongs to.
    journal_partition integer NOT NULL,
    journal_offset    bigint NOT NULL
);
CREATE INDEX shows_by_start ON shows (starts_at, show_id);
CREATE INDEX shows_by_partition ON shows (journal_partition);

CREATE TABLE orders (
    order_id    text PRIMARY KEY,
    show_id     text NOT NULL,
    username    text NOT NULL,
    status      text NOT NULL,
    seats       jsonb NOT NULL,
    zone        text,
    quantity    integer NOT NULL,
    total_cents bigint NOT NULL,
    held_at     timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    -- Issued with the payment and never changed after; kept with their order because they
    -- are only ever read with it.
    tickets     jsonb NOT NULL,
    version     bigint NOT NULL
);
-- "My orders, newest first" is an index range scan.
CREATE INDEX orders_by_user ON orders (username, held_at DESC, order_id DESC);

-- Immutable seat maps: state is the zlib-compressed compact encoding of snapshots/seatmaps.py
-- (one letter per seat in layout order), journal_offset the offset of the event at `version`.
-- The primary key's btree also serves "latest at or before version N" (scanned backwards).
CREATE TABLE seatmap_snapshots (
    show_id           text NOT NULL,
    version           bigint NOT NULL,
    state             bytea NOT NULL,
    journal_partition integer NOT NULL,
    journal_offset    bigint NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (show_id, version)
);
-- Already compressed: spare PostgreSQL a second, useless attempt.
ALTER TABLE seatmap_snapshots ALTER COLUMN state SET STORAGE EXTERNAL;

CREATE FUNCTION refuse_snapshot_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'seat-map snapshots are immutable: % of (%, %) refused',
        TG_OP, OLD.show_id, OLD.version;
END
$$;

CREATE TRIGGER seatmap_snapshots_are_immutable
    BEFORE UPDATE OR DELETE ON seatmap_snapshots
    FOR EACH ROW EXECUTE FUNCTION refuse_snapshot_change();
