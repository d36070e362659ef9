-- Accounts are an edge concern (who may call the API), not part of any event stream: they live
-- here rather than in a journal. The username is the identity every journal refers to.
CREATE TABLE users (
    username      text PRIMARY KEY CHECK (username ~ '^[a-z0-9_]{3,32}$'),
    password_hash text NOT NULL,
    organizer     boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
