-- Where a subscriber's move out of `active` came from, so that an
-- unsubscribe link may undo only an unsubscribe that a link made (never the
-- operator's, an import's, a bounce's or a complaint's). NULL while active,
-- and for changes made before this column existed (not undoable).
ALTER TABLE subscribers ADD COLUMN unsubscribe_source TEXT
    CHECK (unsubscribe_source IN ('one-click', 'page', 'mailto', 'operator', 'import', 'bounce', 'complaint'));
