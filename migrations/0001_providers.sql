-- Authentication providers registered through the admin API or `idgate ap`.
-- Timestamps are RFC 3339 UTC strings with microseconds, as printed by the CLI;
-- booleans are 0/1 so the same SQL runs on SQLite and PostgreSQL.
CREATE TABLE providers (
    provider_id           TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    allow_registrations   BIGINT NOT NULL,
    client_id             TEXT NOT NULL,
    client_secret         TEXT NOT NULL,
    provider_url          TEXT NOT NULL,
    allowed_email_domains TEXT NOT NULL,
    allowed_tenants       TEXT NOT NULL,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);
