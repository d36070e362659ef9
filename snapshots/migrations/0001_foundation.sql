-- The pipeline probe's projection: one row per probe that walked the whole pipe.
CREATE TABLE probe_log (
    probe_id     text PRIMARY KEY,
    command_id   text NOT NULL,
    issued_at    timestamptz NOT NULL,
    answered_at  timestamptz NOT NULL,
    projected_at timestamptz NOT NULL DEFAULT now(),
    journal_partition integer NOT NULL,
    journal_offset    bigint NOT NULL
);

-- Where each projection has got to in each event journal partition. Written in the same
-- transaction as the rows it covers, so a projection restarts exactly where it stopped.
CREATE TABLE projection_offsets (
    projection text NOT NULL,
    topic      text NOT NULL,
    partition  integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (projection, topic, partition)
);
