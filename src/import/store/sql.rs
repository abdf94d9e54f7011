//! Statement pieces that differ between PostgreSQL and SQLite.

use serde::Serialize;
use sqlx::{FromRow, postgres::PgRow, sqlite::SqliteRow};

use crate::db::{Conn, DbError, Engine};

/// `SELECT <list> FROM <source>` over a batch's rows as [`insert`] and
/// [`fetch_rows`] bind them: `cols` are (field = column name, PostgreSQL type). Type `json` means
/// a string holding JSON text, stored in a JSON column.
///
/// PostgreSQL gets one typed array per column, `unnest($1::text[], …)`
/// (binary arrays: measured on 2,000 users, the insert took half the time it
/// took through one JSON parameter and `json_to_recordset`, whose parsing
/// alone was 14 ms); SQLite one JSON array of objects, `json_each($1)`.
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
            let arrays = cols
                .iter()
                .enumerate()
                .map(|(i, (_, t))| format!("${}::{}[]", i + 1, array_type(t)))
                .collect::<Vec<_>>()
                .join(", ");
            let names = cols
                .iter()
                .map(|(c, _)| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ");
            (list, format!("unnest({arrays}) AS x({names})"))
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

/// The array a column travels in: integers as `bigint` (an `integer` column
/// takes them by assignment, and refuses a value out of its range), JSON as
/// text.
fn array_type(t: &str) -> &'static str {
    match t {
        "boolean" => "boolean",
        "integer" | "bigint" => "bigint",
        _ => "text",
    }
}

/// One column of a batch, for PostgreSQL.
enum Column {
    Text(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
    Int(Vec<Option<i64>>),
}

/// A batch's rows, encoded once for the engine's statement (see [`json_rows`]).
enum Rows {
    Json(String),
    Columns(Vec<Column>),
}

fn encoding(e: impl std::fmt::Display) -> DbError {
    DbError::Schema(format!("encoding rows: {e}"))
}

/// Encode `rows` (structs whose field names are the columns of `cols`).
fn encode<R: Serialize>(
    engine: Engine,
    cols: &[(&str, &str)],
    rows: &[R],
) -> Result<Rows, DbError> {
    if engine == Engine::Sqlite {
        return serde_json::to_string(rows)
            .map(Rows::Json)
            .map_err(encoding);
    }
    let mut out: Vec<Column> = cols
        .iter()
        .map(|(_, t)| match array_type(t) {
            "boolean" => Column::Bool(Vec::with_capacity(rows.len())),
            "bigint" => Column::Int(Vec::with_capacity(rows.len())),
            _ => Column::Text(Vec::with_capacity(rows.len())),
        })
        .collect();
    for row in rows {
        let serde_json::Value::Object(mut fields) = serde_json::to_value(row).map_err(encoding)?
        else {
            return Err(encoding("a row is not an object"));
        };
        for ((name, _), column) in cols.iter().zip(out.iter_mut()) {
            let v = fields.remove(*name).unwrap_or(serde_json::Value::Null);
            let wrong = || encoding(format!("`{name}` is not of its column's type"));
            match column {
                Column::Text(c) => c.push(match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s),
                    other => Some(other.to_string()),
                }),
                Column::Bool(c) => c.push(match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::Bool(b) => Some(b),
                    _ => return Err(wrong()),
                }),
                Column::Int(c) => c.push(match v {
                    serde_json::Value::Null => None,
                    n => Some(n.as_i64().ok_or_else(wrong)?),
                }),
            }
        }
    }
    Ok(Rows::Columns(out))
}

impl Rows {
    fn json(self) -> Result<String, DbError> {
        match self {
            Rows::Json(j) => Ok(j),
            Rows::Columns(_) => Err(encoding("columns for SQLite")),
        }
    }

    fn columns(self) -> Result<Vec<Column>, DbError> {
        match self {
            Rows::Columns(c) => Ok(c),
            Rows::Json(_) => Err(encoding("JSON for PostgreSQL")),
        }
    }
}

/// Bind a PostgreSQL batch's columns as the statement's parameters.
macro_rules! bind_columns {
    ($q:expr, $columns:expr) => {{
        let mut q = $q;
        for column in $columns {
            q = match column {
                Column::Text(v) => q.bind(v),
                Column::Bool(v) => q.bind(v),
                Column::Int(v) => q.bind(v),
            };
        }
        q
    }};
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

/// Run a query over a batch's rows (see [`json_rows`]), which are its only
/// parameters.
pub async fn fetch_rows<T, R: Serialize>(
    conn: &mut Conn<'_>,
    sql: &str,
    cols: &[(&str, &str)],
    rows: &[R],
    doing: &'static str,
) -> Result<Vec<T>, DbError>
where
    T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
{
    let rows = encode(conn.engine(), cols, rows)?;
    match conn {
        Conn::Postgres(c) => {
            bind_columns!(sqlx::query_as::<_, T>(sql), rows.columns()?)
                .fetch_all(&mut **c)
                .await
        }
        Conn::Sqlite(c) => {
            sqlx::query_as::<_, T>(sql)
                .bind(rows.json()?)
                .fetch_all(&mut **c)
                .await
        }
    }
    .map_err(DbError::query(doing))
}

/// Run an `INSERT … RETURNING id` over a batch's rows.
pub async fn insert_returning<R: Serialize>(
    conn: &mut Conn<'_>,
    sql: &str,
    cols: &[(&str, &str)],
    rows: &[R],
    doing: &'static str,
) -> Result<Vec<String>, DbError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let rows = encode(conn.engine(), cols, rows)?;
    match conn {
        Conn::Postgres(c) => {
            bind_columns!(sqlx::query_scalar::<_, String>(sql), rows.columns()?)
                .fetch_all(&mut **c)
                .await
        }
        Conn::Sqlite(c) => {
            sqlx::query_scalar::<_, String>(sql)
                .bind(rows.json()?)
                .fetch_all(&mut **c)
                .await
        }
    }
    .map_err(DbError::query(doing))
}

/// Run an `INSERT` over a batch's rows; returns rows written.
pub async fn insert(
    conn: &mut Conn<'_>,
    sql: &str,
    cols: &[(&str, &str)],
    rows: &[impl Serialize],
    doing: &'static str,
) -> Result<u64, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let rows = encode(conn.engine(), cols, rows)?;
    match conn {
        Conn::Postgres(c) => bind_columns!(sqlx::query(sql), rows.columns()?)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()),
        Conn::Sqlite(c) => sqlx::query(sql)
            .bind(rows.json()?)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()),
    }
    .map_err(DbError::query(doing))
}

/// `INSERT … SELECT` needs a `WHERE` before `ON CONFLICT` on SQLite (a parsing
/// ambiguity, see SQLite's upsert docs); harmless on PostgreSQL.
pub const WHERE_TRUE: &str = "WHERE true";

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row<'a> {
        id: &'a str,
        name: Option<&'a str>,
        ok: bool,
        #[serde(rename = "createdAt")]
        created_at: i64,
        meta: String,
    }

    const COLS: [(&str, &str); 5] = [
        ("id", "text"),
        ("name", "text"),
        ("ok", "boolean"),
        ("createdAt", "integer"),
        ("meta", "json"),
    ];

    #[test]
    fn postgres_gets_one_typed_array_per_column() {
        let rows = [
            Row {
                id: "a",
                name: None,
                ok: true,
                created_at: 7,
                meta: "{}".into(),
            },
            Row {
                id: "b",
                name: Some("B"),
                ok: false,
                created_at: -1,
                meta: "[1]".into(),
            },
        ];
        let Rows::Columns(cols) = encode(Engine::Postgres, &COLS, &rows).unwrap() else {
            panic!("columns for PostgreSQL");
        };
        assert!(
            matches!(&cols[0], Column::Text(v) if v == &[Some("a".to_string()), Some("b".to_string())])
        );
        assert!(matches!(&cols[1], Column::Text(v) if v == &[None, Some("B".to_string())]));
        assert!(matches!(&cols[2], Column::Bool(v) if v == &[Some(true), Some(false)]));
        assert!(matches!(&cols[3], Column::Int(v) if v == &[Some(7), Some(-1)]));
        assert!(
            matches!(&cols[4], Column::Text(v) if v == &[Some("{}".to_string()), Some("[1]".to_string())])
        );
        let (select, from) = json_rows(Engine::Postgres, &COLS);
        assert_eq!(
            from,
            r#"unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[], $5::text[]) AS x("id", "name", "ok", "createdAt", "meta")"#
        );
        assert!(select.ends_with(r#"CAST(x."meta" AS json)"#), "{select}");
        // SQLite keeps one JSON array.
        assert!(
            matches!(encode(Engine::Sqlite, &COLS, &rows).unwrap(), Rows::Json(j) if j.starts_with(r#"[{"id":"a","name":null"#))
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_is_an_error_not_a_guess() {
        #[derive(Serialize)]
        struct Bad {
            ok: &'static str,
        }
        let err = encode(Engine::Postgres, &[("ok", "boolean")], &[Bad { ok: "yes" }])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`ok` is not of its column's type"), "{err}");
    }
}
