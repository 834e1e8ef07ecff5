-- The processes working on an issue's live send (see the PostgreSQL schema:
-- there, several at once; on SQLite the send lease keeps it to one, and
-- this table stays empty), and which of them claimed a `claimed` row.
CREATE TABLE senders (
    issue_id   INTEGER NOT NULL REFERENCES issues (id),
    holder     TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    PRIMARY KEY (issue_id, holder)
);

ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
