-- When a worker took a claimed row for sending (NULL: still queued in
-- memory). Crash recovery turns only taken rows into `unknown`; rows that
-- never left the queue go back to `pending`, so a crash leaves at most one
-- unknown row per worker.
ALTER TABLE deliveries ADD COLUMN handed_at TEXT;
