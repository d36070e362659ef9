-- The chat read side, folded from the chat and social journals by `processors.chat_views`.
-- Every row derives from the journals alone, and every write is guarded by the stream's
-- version (or is an insert that ignores conflicts), so a redelivered batch changes nothing.

-- One row per conversation: what the conversation list and the API's checks need.
CREATE TABLE conversations (
    conversation_id  text PRIMARY KEY,
    kind             text NOT NULL,
    title            text,
    creator          text NOT NULL,
    started_at       timestamptz NOT NULL,
    last_activity_at timestamptz NOT NULL,
    last_seq         bigint NOT NULL,
    version          bigint NOT NULL
);

-- Current members only; a member who leaves loses the row (and their read marker, as in the
-- domain's views: whoever comes back starts caught up).
CREATE TABLE conversation_members (
    conversation_id text NOT NULL,
    username        text NOT NULL,
    last_read_seq   bigint NOT NULL,
    PRIMARY KEY (conversation_id, username)
);
-- "My conversations" is an index range scan.
CREATE INDEX conversation_members_by_user ON conversation_members (username, conversation_id);

-- The history. The primary key is the cursor: `before=seq` pages are backward range scans
-- of (conversation_id, seq), whatever the size of the conversation.
CREATE TABLE messages (
    conversation_id text NOT NULL,
    seq             bigint NOT NULL,
    sender          text NOT NULL,
    text            text NOT NULL,
    sent_at         timestamptz NOT NULL,
    client_msg_id   text NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);

-- Immutable conversation states (members, read markers, counters) every N events or T seconds
-- per conversation; journal_offset is the offset of the event at `version`.
CREATE TABLE conversation_snapshots (
    conversation_id   text NOT NULL,
    version           bigint NOT NULL,
    state             jsonb NOT NULL,
    journal_partition integer NOT NULL,
    journal_offset    bigint NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, version)
);

CREATE FUNCTION refuse_conversation_snapshot_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'conversation snapshots are immutable: % of (%, %) refused',
        TG_OP, OLD.conversation_id, OLD.version;
END
$$;

CREATE TRIGGER conversation_snapshots_are_immutable
    BEFORE UPDATE OR DELETE ON conversation_snapshots
    FOR EACH ROW EXECUTE FUNCTION refuse_conversation_snapshot_change();

-- The social graph: each user's stream version guards the rows of that stream.
CREATE TABLE social_streams (
    username text PRIMARY KEY,
    version  bigint NOT NULL
);

CREATE TABLE buddies (
    username text NOT NULL,
    buddy    text NOT NULL,
    since    timestamptz NOT NULL,
    PRIMARY KEY (username, buddy)
);
-- Presence fans out to whoever lists the user as a buddy.
CREATE INDEX buddies_by_buddy ON buddies (buddy, username);

CREATE TABLE blocks (
    username text NOT NULL,
    blocked  text NOT NULL,
    since    timestamptz NOT NULL,
    PRIMARY KEY (username, blocked)
);
