-- Bounce and complaint reports (DSN, ARF, plain bounces, auto-replies,
-- ESP webhooks), one row per recipient a report speaks of. `fingerprint`
-- makes ingesting the same report twice a no-op. `raw` keeps the report
-- (size-capped) for review.
CREATE TABLE bounces (
    id            INTEGER PRIMARY KEY,
    received_at   TEXT    NOT NULL,
    kind          TEXT    NOT NULL
                  CHECK (kind IN ('hard', 'soft', 'complaint', 'auto-reply', 'delayed', 'unmatched')),
    matched_by    TEXT    CHECK (matched_by IN ('verp', 'message-id', 'recipient')),
    issue_id      INTEGER REFERENCES issues (id),
    subscriber_id INTEGER REFERENCES subscribers (id),
    email         TEXT,
    status_code   TEXT,
    diagnostic    TEXT,
    source        TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL UNIQUE,
    raw           TEXT
);

CREATE INDEX bounces_by_issue ON bounces (issue_id, kind);
CREATE INDEX bounces_by_subscriber ON bounces (subscriber_id, kind);

-- The asynchronous outcome of a delivery, beside its SMTP result.
ALTER TABLE deliveries ADD COLUMN bounced_at TEXT;
ALTER TABLE deliveries ADD COLUMN bounce_kind TEXT;
ALTER TABLE deliveries ADD COLUMN bounce_status TEXT;
ALTER TABLE deliveries ADD COLUMN bounce_diagnostic TEXT;
