//! Queries on subscriber attributes: how many active subscribers lack an
//! attribute (for `issue check`), and the audience filters a live send's
//! snapshot applies (translated to SQL over the `attributes` JSON here).

use super::{Store, StoreResult};
use crate::domain::{Audience, Filter};
use crate::store::subscribers::Subscriber;

/// The JSON path of a top-level attribute key. Keys are checked by
/// `domain::is_attr_key` (or the audience parser) before they get here,
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

/// The SQL condition for `audience` (starting with ` AND `, or empty for
/// everyone), with its parameters numbered from `?first`, and the values to
/// bind in that order. Attribute values compare as text.
pub(crate) fn audience_sql(audience: Option<&Audience>, first: usize) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut binds = Vec::new();
    for (key, filter) in audience.map(|a| a.filters().iter()).into_iter().flatten() {
        let path = first + binds.len();
        binds.push(json_path(key));
        match filter {
            Filter::OneOf(values) => {
                let list = first + binds.len();
                binds.push(serde_json::to_string(values).expect("strings serialise"));
                sql.push_str(&format!(
                    " AND CAST(attributes ->> ?{path} AS TEXT) IN (SELECT value FROM json_each(?{list}))"
                ));
            }
            Filter::Present => sql.push_str(&format!(" AND NOT {}", missing_sql(path))),
            Filter::Absent => sql.push_str(&format!(" AND {}", missing_sql(path))),
        }
    }
    (sql, binds)
}

impl Store {
    /// Active subscribers in `audience` (None: all active subscribers).
    pub async fn count_audience(&self, audience: Option<&Audience>) -> StoreResult<i64> {
        let (filter, binds) = audience_sql(audience, 1);
        let sql = format!("SELECT COUNT(*) FROM subscribers WHERE status = 'active'{filter}");
        let mut query = sqlx::query_scalar(&sql);
        for b in binds {
            query = query.bind(b);
        }
        Ok(query.fetch_one(self.pool()).await?)
    }

    /// A page of the active subscribers in `audience`, by id after `after`.
    pub async fn audience_page(
        &self,
        audience: Option<&Audience>,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<Subscriber>> {
        let (filter, binds) = audience_sql(audience, 3);
        let sql = format!(
            "SELECT {} FROM subscribers WHERE id > ?1 AND status = 'active'{filter} ORDER BY id LIMIT ?2",
            super::subscribers::SUBSCRIBER_COLUMNS
        );
        let mut query = sqlx::query(&sql).bind(after).bind(limit);
        for b in binds {
            query = query.bind(b);
        }
        query
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(|row| Ok(super::subscribers::subscriber_from_row(row)?))
            .collect()
    }

    /// Active subscribers.
    pub async fn count_active(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM subscribers WHERE status = 'active'")
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Active subscribers without a usable value for attribute `key`.
    pub async fn active_missing_attribute(&self, key: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM subscribers WHERE status = 'active' AND {}",
            missing_sql(1)
        ))
        .bind(json_path(key))
        .fetch_one(self.pool())
        .await?)
    }
}
