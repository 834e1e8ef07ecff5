-- The delivery ledger: one row per issue version, one row per (issue,
-- subscriber). A delivery row is durably `claimed` before its message goes
-- to SMTP and becomes `sent` only after the server's 250.

CREATE TABLE issues (
    id            INTEGER PRIMARY KEY,
    slug          TEXT    NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1,
    subject       TEXT    NOT NULL,
    -- SHA-256 of the issue file: a changed file is a new version.
    content_hash  TEXT    NOT NULL,
    -- The compiled issue (JSON: subject, html, text with placeholders), so a
    -- resumed send is byte-identical to the first part.
    compiled      TEXT    NOT NULL CHECK (json_valid(compiled)),
    source_path   TEXT,
    state         TEXT    NOT NULL DEFAULT 'draft'
                  CHECK (state IN ('draft', 'scheduled', 'sending', 'sent', 'missed', 'cancelled')),
    scheduled_at  TEXT,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at    TEXT,
    finished_at   TEXT,
    UNIQUE (slug, version)
);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    issue_id        INTEGER NOT NULL REFERENCES issues (id),
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id),
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'claimed', 'sent', 'deferred', 'failed', 'unknown', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_code       INTEGER,
    last_reply      TEXT,
    message_id      TEXT    NOT NULL,
    claimed_at      TEXT,
    sent_at         TEXT,
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (issue_id, subscriber_id)
);

CREATE INDEX deliveries_by_state ON deliveries (issue_id, state, id);

-- Test sends go to arbitrary addresses and never count as live deliveries.
CREATE TABLE test_sends (
    id         INTEGER PRIMARY KEY,
    issue_slug TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    reply      TEXT,
    sent_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Leases: one holder at a time for a named job (a live send of one issue,
-- the cron run), renewed while working, taken over once expired.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
