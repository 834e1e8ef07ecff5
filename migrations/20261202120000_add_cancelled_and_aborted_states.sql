-- `herald abort`: a delivery that will never be attempted is `cancelled`
-- (terminal), and an issue whose send was stopped for good is `aborted`.
-- SQLite cannot change a CHECK constraint in place, so both tables are
-- rebuilt. This runs inside the migration's transaction with foreign keys
-- on, so the child table (deliveries) is parked in a plain copy while its
-- parent (issues) is rebuilt, then recreated with its references.

CREATE TABLE deliveries_copy AS SELECT * FROM deliveries;
DROP TABLE deliveries;

CREATE TABLE issues_new (
    id            INTEGER PRIMARY KEY,
    slug          TEXT    NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1,
    subject       TEXT    NOT NULL,
    content_hash  TEXT    NOT NULL,
    compiled      TEXT    NOT NULL CHECK (json_valid(compiled)),
    source_path   TEXT,
    state         TEXT    NOT NULL DEFAULT 'draft'
                  CHECK (state IN ('draft', 'scheduled', 'sending', 'sent', 'missed', 'cancelled', 'aborted')),
    scheduled_at  TEXT,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at    TEXT,
    finished_at   TEXT,
    UNIQUE (slug, version)
);
INSERT INTO issues_new (id, slug, version, subject, content_hash, compiled, source_path, state,
                        scheduled_at, created_at, started_at, finished_at)
    SELECT id, slug, version, subject, content_hash, compiled, source_path, state,
           scheduled_at, created_at, started_at, finished_at FROM issues;
DROP TABLE issues;
ALTER TABLE issues_new RENAME TO issues;

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    issue_id        INTEGER NOT NULL REFERENCES issues (id),
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id),
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'claimed', 'sent', 'deferred', 'failed', 'unknown',
                                     'skipped', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_code       INTEGER,
    last_reply      TEXT,
    message_id      TEXT    NOT NULL,
    claimed_at      TEXT,
    sent_at         TEXT,
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    handed_at       TEXT,
    UNIQUE (issue_id, subscriber_id)
);
INSERT INTO deliveries (id, issue_id, subscriber_id, state, attempts, next_attempt_at, last_code,
                        last_reply, message_id, claimed_at, sent_at, updated_at, handed_at)
    SELECT id, issue_id, subscriber_id, state, attempts, next_attempt_at, last_code,
           last_reply, message_id, claimed_at, sent_at, updated_at, handed_at FROM deliveries_copy;
DROP TABLE deliveries_copy;
CREATE INDEX deliveries_by_state ON deliveries (issue_id, state, id);
