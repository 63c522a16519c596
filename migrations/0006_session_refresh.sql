-- Revalidation at the provider: the refresh token of a session's sign-in,
-- sealed (AES-256-GCM under a key derived from the stored master secret,
-- bound to the session's row), when the last check with the provider
-- succeeded, when the next is due (later after a failed one), and until
-- when which replica's check holds the claim (one refresh per session at a
-- time, across replicas; only the holder may record the outcome).
ALTER TABLE sessions ADD COLUMN refresh_token TEXT;
ALTER TABLE sessions ADD COLUMN validated_at BIGINT;
ALTER TABLE sessions ADD COLUMN revalidate_at BIGINT;
ALTER TABLE sessions ADD COLUMN refreshing_until BIGINT;
ALTER TABLE sessions ADD COLUMN refresh_claim TEXT;
