-- Login states already used at a callback, so a replayed callback is refused
-- on every replica; keyed by the SHA-256 of the state (the state itself is
-- never stored). Rows go once the login could no longer finish anyway.
CREATE TABLE used_states (
    state_hash TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
