-- Subscribers: the audience. Email uniqueness is case-insensitive.
CREATE TABLE subscribers (
    id              INTEGER PRIMARY KEY,
    email           TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    name            TEXT,
    status          TEXT    NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'unsubscribed', 'bounced', 'complained')),
    attributes      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(attributes)),
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    unsubscribed_at TEXT
);

CREATE INDEX subscribers_by_status ON subscribers (status, id);

-- Installation-wide values herald generates once (e.g. the unsubscribe
-- signing key when none is configured).
CREATE TABLE app_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
