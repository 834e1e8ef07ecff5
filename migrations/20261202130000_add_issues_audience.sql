-- The audience filter of a live send (JSON, see domain::Audience), fixed
-- when the send starts; NULL: every active subscriber.
ALTER TABLE issues ADD COLUMN audience TEXT CHECK (audience IS NULL OR json_valid(audience));
