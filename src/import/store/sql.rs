//! Statement pieces that differ between PostgreSQL and SQLite.

use serde::Serialize;
use sqlx::{FromRow, postgres::PgRow, sqlite::SqliteRow};

use crate::db::{Conn, DbError, Engine, on_conn};

/// `SELECT <list> FROM <source>` over a JSON array of objects bound as `$1`:
/// `cols` are (JSON key = column name, PostgreSQL type). Type `json` means a
/// string holding JSON text, stored in a JSON column.
pub fn json_rows(engine: Engine, cols: &[(&str, &str)]) -> (String, String) {
    match engine {
        Engine::Postgres => {
            let list = cols
                .iter()
                .map(|(c, t)| match *t {
                    "json" => format!("CAST(x.\"{c}\" AS json)"),
                    _ => format!("x.\"{c}\""),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let defs = cols
                .iter()
                .map(|(c, t)| format!("\"{c}\" {}", if *t == "json" { "text" } else { t }))
                .collect::<Vec<_>>()
                .join(", ");
            (list, format!("json_to_recordset($1::json) AS x({defs})"))
        }
        Engine::Sqlite => {
            let list = cols
                .iter()
                .map(|(c, _)| format!("json_extract(x.value, '$.{c}')"))
                .collect::<Vec<_>>()
                .join(", ");
            (list, "json_each($1) AS x".to_string())
        }
    }
}

/// `<column> IN <list $n>`: an array on PostgreSQL, a JSON array on SQLite.
pub fn in_list(engine: Engine, column: &str, n: usize) -> String {
    match engine {
        Engine::Postgres => format!("{column} = ANY(${n})"),
        Engine::Sqlite => format!("{column} IN (SELECT value FROM json_each(${n}))"),
    }
}

/// Run a query whose parameters are lists (see [`in_list`]).
pub async fn fetch_with_lists<T>(
    conn: &mut Conn<'_>,
    sql: &str,
    lists: &[&[String]],
    doing: &'static str,
) -> Result<Vec<T>, DbError>
where
    T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
{
    match conn {
        Conn::Postgres(c) => {
            let mut q = sqlx::query_as::<_, T>(sql);
            for l in lists {
                q = q.bind(l.to_vec());
            }
            q.fetch_all(&mut **c).await
        }
        Conn::Sqlite(c) => {
            let mut q = sqlx::query_as::<_, T>(sql);
            for l in lists {
                q = q.bind(serde_json::to_string(l).unwrap_or_else(|_| "[]".into()));
            }
            q.fetch_all(&mut **c).await
        }
    }
    .map_err(DbError::query(doing))
}

/// Run an `INSERT … RETURNING id` whose rows are the JSON array `rows`.
pub async fn insert_returning<R: Serialize>(
    conn: &mut Conn<'_>,
    sql: &str,
    rows: &[R],
    doing: &'static str,
) -> Result<Vec<String>, DbError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let json =
        serde_json::to_string(rows).map_err(|e| DbError::Schema(format!("encoding rows: {e}")))?;
    on_conn!(conn, |c| sqlx::query_scalar::<_, String>(sql)
        .bind(json)
        .fetch_all(c)
        .await
        .map_err(DbError::query(doing)))
}

/// Run an `INSERT` whose rows are the JSON array `rows`; returns rows written.
pub async fn insert(
    conn: &mut Conn<'_>,
    sql: &str,
    rows: &[impl Serialize],
    doing: &'static str,
) -> Result<u64, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let json =
        serde_json::to_string(rows).map_err(|e| DbError::Schema(format!("encoding rows: {e}")))?;
    on_conn!(conn, |c| Ok(sqlx::query(sql)
        .bind(json)
        .execute(c)
        .await
        .map_err(DbError::query(doing))?
        .rows_affected()))
}

/// `INSERT … SELECT` needs a `WHERE` before `ON CONFLICT` on SQLite (a parsing
/// ambiguity, see SQLite's upsert docs); harmless on PostgreSQL.
pub const WHERE_TRUE: &str = "WHERE true";
