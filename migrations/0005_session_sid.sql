-- The provider's session (`sid` of the ID token) a session's sign-in came
-- from, so that a front-channel logout from the provider ends exactly the
-- sessions of that `sid`; kept as its SHA-256 (a `sid` is a bearer secret).
ALTER TABLE sessions ADD COLUMN sid_hash TEXT;
CREATE INDEX sessions_by_sid ON sessions (provider_id, sid_hash);
