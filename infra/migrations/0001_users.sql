-- Accounts. Emails are stored normalised (trimmed, lower-case) by the API.
-- Statements are idempotent (IF NOT EXISTS); migrations are applied once each, in name order.
CREATE TABLE IF NOT EXISTS users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
