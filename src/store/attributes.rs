//! Queries on subscriber attributes: how many active subscribers lack an
//! attribute (for `issue check`), and the audience filters a live send's
//! snapshot applies (translated to SQL over the `attributes` JSON here).

use super::Store;

/// The JSON path of a top-level attribute key. Keys are checked by
/// `render::is_attr_key` (or the audience parser) before they get here,
/// and the path is always bound as a parameter, never spliced into SQL.
pub(crate) fn json_path(key: &str) -> String {
    let escaped = key.replace('\\', "\\\\").replace('"', "\\\"");
    format!("$.\"{escaped}\"")
}

/// SQL truth of "the attribute at path `?N` is missing": absent, null, or
/// a blank string (what a placeholder treats as missing too).
pub(crate) fn missing_sql(param: usize) -> String {
    format!(
        "(json_type(attributes, ?{param}) IS NULL OR json_type(attributes, ?{param}) IN ('null', 'array', 'object') \
         OR (json_type(attributes, ?{param}) = 'text' AND trim(attributes ->> ?{param}) = ''))"
    )
}

impl Store {
    /// Active subscribers.
    pub async fn count_active(&self) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM subscribers WHERE status = 'active'")
            .fetch_one(self.pool())
            .await
    }

    /// Active subscribers without a usable value for attribute `key`.
    pub async fn active_missing_attribute(&self, key: &str) -> sqlx::Result<i64> {
        sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM subscribers WHERE status = 'active' AND {}",
            missing_sql(1)
        ))
        .bind(json_path(key))
        .fetch_one(self.pool())
        .await
    }
}
