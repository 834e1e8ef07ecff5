-- The (status, id) index cost ~10 % of import speed (one more B-tree insert
-- per row) and served only listings by status, which page through the table
-- by rowid just as well. Sends snapshot the audience with one full scan.
DROP INDEX IF EXISTS subscribers_by_status;
