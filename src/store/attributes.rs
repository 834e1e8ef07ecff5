//! Queries on subscriber attributes: how many active subscribers lack an
//! attribute (for `issue check`), and the audience filters a live send's
//! snapshot applies (translated to SQL over the `attributes` JSON here).

use super::{Dialect, Store, StoreResult};
use crate::domain::{Audience, Filter};
use crate::store::subscribers::Subscriber;

/// How a top-level attribute key is bound: SQLite takes a JSON path,
/// PostgreSQL the key itself. Keys are checked by `domain::is_attr_key`
/// (or the audience parser) before they get here, and are always bound as
/// a parameter, never spliced into SQL.
pub(crate) fn key_param(d: Dialect, key: &str) -> String {
    match d {
        Dialect::Sqlite => {
            let escaped = key.replace('\\', "\\\\").replace('"', "\\\"");
            format!("$.\"{escaped}\"")
        }
        Dialect::Postgres => key.to_string(),
    }
}

/// SQL truth of "the attribute whose key is parameter `$N` is missing":
/// absent, null, or a blank string (what a placeholder treats as missing
/// too).
pub(crate) fn missing_sql(d: Dialect, param: usize) -> String {
    match d {
        Dialect::Sqlite => format!(
            "(json_type(attributes, ${param}) IS NULL OR json_type(attributes, ${param}) IN ('null', 'array', 'object') \
             OR (json_type(attributes, ${param}) = 'text' AND trim(attributes ->> ${param}) = ''))"
        ),
        Dialect::Postgres => format!(
            "(jsonb_typeof(attributes -> ${param}) IS NULL OR jsonb_typeof(attributes -> ${param}) IN ('null', 'array', 'object') \
             OR (jsonb_typeof(attributes -> ${param}) = 'string' AND trim(attributes ->> ${param}) = ''))"
        ),
    }
}

/// The attribute whose key is parameter `$N` as text, the same on both
/// backends: a string as itself, a number or a boolean as its JSON text
/// (`true`, `1.50`), NULL when absent or null.
fn attribute_text(d: Dialect, param: usize) -> String {
    match d {
        Dialect::Sqlite => format!(
            "CASE json_type(attributes, ${param}) WHEN 'text' THEN attributes ->> ${param} \
             WHEN 'null' THEN NULL ELSE attributes -> ${param} END"
        ),
        Dialect::Postgres => format!(
            "CASE jsonb_typeof(attributes -> ${param}) WHEN 'string' THEN attributes ->> ${param} \
             WHEN 'null' THEN NULL ELSE (attributes -> ${param})::text END"
        ),
    }
}

/// The SQL condition for `audience` (starting with ` AND `, or empty for
/// everyone), with its parameters numbered from `$first`, and the values to
/// bind in that order. Attribute values compare as text.
pub(crate) fn audience_sql(
    d: Dialect,
    audience: Option<&Audience>,
    first: usize,
) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut binds = Vec::new();
    for (key, filter) in audience.map(|a| a.filters().iter()).into_iter().flatten() {
        let path = first + binds.len();
        binds.push(key_param(d, key));
        match filter {
            Filter::OneOf(values) => {
                let list = first + binds.len();
                binds.push(serde_json::to_string(values).expect("strings serialise"));
                sql.push_str(&format!(
                    " AND {}",
                    d.in_texts(&attribute_text(d, path), list)
                ));
            }
            Filter::Present => sql.push_str(&format!(" AND NOT {}", missing_sql(d, path))),
            Filter::Absent => sql.push_str(&format!(" AND {}", missing_sql(d, path))),
        }
    }
    (sql, binds)
}

impl Store {
    /// Active subscribers in `audience` (None: all active subscribers).
    pub async fn count_audience(&self, audience: Option<&Audience>) -> StoreResult<i64> {
        super::with_db!(self, |pool, writer, d| {
            let (filter, binds) = audience_sql(d, audience, 1);
            let sql = format!("SELECT COUNT(*) FROM subscribers WHERE status = 'active'{filter}");
            let mut query = sqlx::query_scalar(&sql);
            for b in binds {
                query = query.bind(b);
            }
            Ok(query.fetch_one(pool).await?)
        })
    }

    /// A page of the active subscribers in `audience`, by id after `after`.
    pub async fn audience_page(
        &self,
        audience: Option<&Audience>,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<Subscriber>> {
        super::with_db!(self, |pool, writer, d| {
            let (filter, binds) = audience_sql(d, audience, 3);
            let sql = format!(
            "SELECT {} FROM subscribers WHERE id > $1 AND status = 'active'{filter} ORDER BY id LIMIT $2",
            super::subscribers::subscriber_columns(d)
        );
            let mut query = sqlx::query_as(&sql).bind(after).bind(limit);
            for b in binds {
                query = query.bind(b);
            }
            query
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|row: super::subscribers::SubscriberRow| Ok(row.parse()?))
                .collect()
        })
    }

    /// Active subscribers.
    pub async fn count_active(&self) -> StoreResult<i64> {
        super::with_db!(self, |pool, writer, d| {
            Ok(
                sqlx::query_scalar("SELECT COUNT(*) FROM subscribers WHERE status = 'active'")
                    .fetch_one(pool)
                    .await?,
            )
        })
    }

    /// Active subscribers without a usable value for attribute `key`.
    pub async fn active_missing_attribute(&self, key: &str) -> StoreResult<i64> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM subscribers WHERE status = 'active' AND {}",
                missing_sql(d, 1)
            ))
            .bind(key_param(d, key))
            .fetch_one(pool)
            .await?)
        })
    }
}
