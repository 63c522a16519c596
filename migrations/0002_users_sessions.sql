-- External users: one row per (provider, sub). The username is unique across
-- all providers; it never changes once given.
CREATE TABLE users (
    provider_id        TEXT NOT NULL,
    sub                TEXT NOT NULL,
    username           TEXT NOT NULL UNIQUE,
    email              TEXT NOT NULL,
    name               TEXT NOT NULL,
    given_name         TEXT NOT NULL,
    family_name        TEXT NOT NULL,
    preferred_username TEXT NOT NULL,
    oid                TEXT NOT NULL,
    tid                TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    last_login         TEXT NOT NULL,
    PRIMARY KEY (provider_id, sub)
);

-- Sessions, keyed by the SHA-256 of the session ID (the cookie carries the
-- ID itself, the database never does). Times are Unix seconds.
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    sub         TEXT NOT NULL,
    identity    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (provider_id, sub);

-- Key material generated on first start and shared by every replica:
-- the cookie key and the identity assertion signing keys.
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
