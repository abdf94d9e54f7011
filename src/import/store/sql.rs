//! Statement pieces that differ between PostgreSQL and SQLite.

use serde::Serialize;
use sqlx::{FromRow, postgres::PgRow, sqlite::SqliteRow};

use crate::db::{Conn, DbError, Engine, on_conn};

/// `SELECT <list> FROM <source>` over a batch's rows as [`insert`],
/// [`insert_returning`] and [`fetch_rows`] bind them: `cols` are (field =
/// column name, PostgreSQL type). Type `json` means a string holding JSON
/// text, stored in a JSON column. [`column`] names one column in the rest of
/// the statement.
///
/// PostgreSQL gets one typed array per column, `unnest($1::text[], …)`
/// (binary arrays: measured on 2,000 users, the insert took half the time it
/// took through one JSON parameter and `json_to_recordset`, whose parsing
/// alone was 14 ms). SQLite, which has no arrays, gets the rows as a
/// multi-row `VALUES` list of bound parameters, as many rows per statement as
/// its parameter limit allows (it had one JSON array, `json_each`, whose
/// objects `json_extract` parsed again for every column: 18 % of the
/// 100,000-user import's CPU).
pub fn batch_rows(engine: Engine, cols: &[(&str, &str)]) -> (String, String) {
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
            let list = (1..=cols.len())
                .map(|i| format!("x.column{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            (list, format!("(VALUES {ROWS}) AS x"))
        }
    }
}

/// Where the rows of a SQLite statement go: replaced by one chunk's
/// `(?, …), (?, …)` when it runs.
const ROWS: &str = "/* rows */";

/// Bound parameters per SQLite statement (`SQLITE_MAX_VARIABLE_NUMBER`'s
/// default since SQLite 3.32). The statements are not kept in sqlx's
/// statement cache (`persistent(false)`): one prepared for 2,000 rows is
/// megabytes, and each table and chunk size would keep its own.
const SQLITE_MAX_PARAMS: usize = 32_766;

/// Column `name` of `cols` in a statement over [`batch_rows`].
pub fn column(engine: Engine, cols: &[(&str, &str)], name: &str) -> String {
    match engine {
        Engine::Postgres => format!("x.\"{name}\""),
        Engine::Sqlite => {
            let i = cols
                .iter()
                .position(|(c, _)| *c == name)
                .map_or(0, |i| i + 1);
            format!("x.column{i}")
        }
    }
}

/// One SQLite statement's text and rows: `(?, …)` for each row of the chunk.
fn sqlite_chunk(sql: &str, rows: usize, cols: usize) -> String {
    let mut tuple = String::with_capacity(cols * 3 + 2);
    tuple.push('(');
    for i in 0..cols {
        tuple.push_str(if i == 0 { "?" } else { ", ?" });
    }
    tuple.push(')');
    let mut list = String::with_capacity(rows * (tuple.len() + 2));
    for r in 0..rows {
        if r > 0 {
            list.push_str(", ");
        }
        list.push_str(&tuple);
    }
    sql.replacen(ROWS, &list, 1)
}

/// Rows per SQLite statement for `cols` columns.
fn sqlite_rows_per_statement(cols: usize) -> usize {
    (SQLITE_MAX_PARAMS / cols.max(1)).max(1)
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

/// One column of a batch.
enum Column {
    Text(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
    Int(Vec<Option<i64>>),
}

fn encoding(e: impl std::fmt::Display) -> DbError {
    DbError::Schema(format!("encoding rows: {e}"))
}

/// Encode `rows` (structs whose field names are the columns of `cols`) into
/// one vector per column.
fn encode<R: Serialize>(cols: &[(&str, &str)], rows: &[R]) -> Result<Vec<Column>, DbError> {
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
    Ok(out)
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

/// Bind rows `$range` of a SQLite batch's columns, row by row.
macro_rules! bind_rows {
    ($q:expr, $columns:expr, $range:expr) => {{
        let mut q = $q;
        for r in $range {
            for column in $columns.iter_mut() {
                q = match column {
                    Column::Text(v) => q.bind(v[r].take()),
                    Column::Bool(v) => q.bind(v[r]),
                    Column::Int(v) => q.bind(v[r]),
                };
            }
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

/// Run a query over a batch's rows (see [`batch_rows`]), which are its only
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
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let n = rows.len();
    let mut columns = encode(cols, rows)?;
    match conn {
        Conn::Postgres(c) => bind_columns!(sqlx::query_as::<_, T>(sql), columns)
            .fetch_all(&mut **c)
            .await
            .map_err(DbError::query(doing)),
        Conn::Sqlite(c) => {
            let mut out = Vec::new();
            let per = sqlite_rows_per_statement(columns.len());
            for start in (0..n).step_by(per) {
                let end = (start + per).min(n);
                let text = sqlite_chunk(sql, end - start, columns.len());
                let q = bind_rows!(
                    sqlx::query_as::<_, T>(&text).persistent(false),
                    columns,
                    start..end
                );
                out.extend(q.fetch_all(&mut **c).await.map_err(DbError::query(doing))?);
            }
            Ok(out)
        }
    }
}

/// Batches of at least this many rows try a plain `INSERT` first on
/// PostgreSQL (see [`plain_first`]).
const PLAIN_FIRST_ROWS: usize = 64;

/// How an `INSERT … ON CONFLICT … DO NOTHING` over a batch runs on
/// PostgreSQL: `Some(statement without the clause)` to try first.
///
/// With the clause, PostgreSQL probes each unique index it covers for every
/// row before inserting (speculative insertion), then descends the same
/// indexes again to insert. On the 1,000,000-user import those probes
/// (`ExecCheckIndexConstraints`) were a fifth of the backends' CPU. So a batch
/// of at least [`PLAIN_FIRST_ROWS`] rows is tried as a plain `INSERT` inside a
/// savepoint: the unique indexes still refuse a second holder, with an error
/// instead of a skip. Only on a unique violation does the savepoint roll back
/// and the statement run as written. On a fresh Kernia database nothing
/// conflicts and nothing runs twice. The caller's transaction is required
/// (every import write has one). SQLite checks its unique indexes once
/// either way.
fn plain_first(conn: &Conn<'_>, sql: &str, rows: usize) -> Option<String> {
    if conn.engine() != Engine::Postgres || rows < PLAIN_FIRST_ROWS {
        return None;
    }
    without_on_conflict(sql)
}

/// `sql` without its `ON CONFLICT … DO NOTHING` clause, if it has one.
fn without_on_conflict(sql: &str) -> Option<String> {
    let start = sql.find(" ON CONFLICT")?;
    let end = start + sql[start..].find(" DO NOTHING")? + " DO NOTHING".len();
    Some(format!("{}{}", &sql[..start], &sql[end..]))
}

/// One step of a plain try's savepoint: taken before it, released when it
/// worked, rolled back to when it met a unique violation.
async fn savepoint(conn: &mut Conn<'_>, step: &'static str) -> Result<(), DbError> {
    on_conn!(conn, |c| {
        sqlx::query(step)
            .execute(c)
            .await
            .map_err(DbError::query("moving the plain insert's savepoint"))?;
    });
    Ok(())
}

const SAVEPOINT: &str = "SAVEPOINT cutover_plain_insert";
const RELEASE: &str = "RELEASE SAVEPOINT cutover_plain_insert";
const ROLLBACK: &str = "ROLLBACK TO SAVEPOINT cutover_plain_insert";

/// Run an `INSERT … RETURNING id` over a batch's rows.
pub async fn insert_returning<R: Serialize>(
    conn: &mut Conn<'_>,
    sql: &str,
    cols: &[(&str, &str)],
    rows: &[R],
    doing: &'static str,
) -> Result<Vec<String>, DbError> {
    if let Some(plain) = plain_first(conn, sql, rows.len()) {
        savepoint(conn, SAVEPOINT).await?;
        match fetch_rows::<(String,), R>(conn, &plain, cols, rows, doing).await {
            Ok(ids) => {
                savepoint(conn, RELEASE).await?;
                return Ok(ids.into_iter().map(|(id,)| id).collect());
            }
            Err(e) if e.is_unique_violation() => savepoint(conn, ROLLBACK).await?,
            Err(e) => return Err(e),
        }
    }
    let ids: Vec<(String,)> = fetch_rows(conn, sql, cols, rows, doing).await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// Run an `INSERT` over a batch's rows; returns rows written.
pub async fn insert(
    conn: &mut Conn<'_>,
    sql: &str,
    cols: &[(&str, &str)],
    rows: &[impl Serialize],
    doing: &'static str,
) -> Result<u64, DbError> {
    if let Some(plain) = plain_first(conn, sql, rows.len()) {
        savepoint(conn, SAVEPOINT).await?;
        match insert_as_written(conn, &plain, cols, rows, doing).await {
            Ok(n) => {
                savepoint(conn, RELEASE).await?;
                return Ok(n);
            }
            Err(e) if e.is_unique_violation() => savepoint(conn, ROLLBACK).await?,
            Err(e) => return Err(e),
        }
    }
    insert_as_written(conn, sql, cols, rows, doing).await
}

async fn insert_as_written(
    conn: &mut Conn<'_>,
    sql: &str,
    cols: &[(&str, &str)],
    rows: &[impl Serialize],
    doing: &'static str,
) -> Result<u64, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let n = rows.len();
    let mut columns = encode(cols, rows)?;
    match conn {
        Conn::Postgres(c) => bind_columns!(sqlx::query(sql), columns)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected())
            .map_err(DbError::query(doing)),
        Conn::Sqlite(c) => {
            let mut written = 0;
            let per = sqlite_rows_per_statement(columns.len());
            for start in (0..n).step_by(per) {
                let end = (start + per).min(n);
                let text = sqlite_chunk(sql, end - start, columns.len());
                let q = bind_rows!(sqlx::query(&text).persistent(false), columns, start..end);
                written += q
                    .execute(&mut **c)
                    .await
                    .map_err(DbError::query(doing))?
                    .rows_affected();
            }
            Ok(written)
        }
    }
}

/// `INSERT … SELECT` needs a `WHERE` before `ON CONFLICT` on SQLite (a parsing
/// ambiguity, see SQLite's upsert docs); harmless on PostgreSQL.
pub const WHERE_TRUE: &str = "WHERE true";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_on_conflict_clause_is_cut_out_whole() {
        assert_eq!(
            without_on_conflict(
                "INSERT INTO t (a) SELECT x.a FROM x WHERE true ON CONFLICT (id) DO NOTHING RETURNING id"
            )
            .as_deref(),
            Some("INSERT INTO t (a) SELECT x.a FROM x WHERE true RETURNING id")
        );
        assert_eq!(
            without_on_conflict("INSERT INTO t (a) SELECT 1 WHERE true ON CONFLICT DO NOTHING")
                .as_deref(),
            Some("INSERT INTO t (a) SELECT 1 WHERE true")
        );
        assert_eq!(without_on_conflict("INSERT INTO t (a) VALUES (1)"), None);
        // An update on conflict is not a skip: never tried without it.
        assert_eq!(
            without_on_conflict("INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = 2"),
            None
        );
    }

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
    fn rows_become_one_typed_vector_per_column() {
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
        let cols = encode(&COLS, &rows).unwrap();
        assert!(
            matches!(&cols[0], Column::Text(v) if v == &[Some("a".to_string()), Some("b".to_string())])
        );
        assert!(matches!(&cols[1], Column::Text(v) if v == &[None, Some("B".to_string())]));
        assert!(matches!(&cols[2], Column::Bool(v) if v == &[Some(true), Some(false)]));
        assert!(matches!(&cols[3], Column::Int(v) if v == &[Some(7), Some(-1)]));
        assert!(
            matches!(&cols[4], Column::Text(v) if v == &[Some("{}".to_string()), Some("[1]".to_string())])
        );
    }

    #[test]
    fn statements_read_the_rows_each_engine_s_way() {
        let (select, from) = batch_rows(Engine::Postgres, &COLS);
        assert_eq!(
            from,
            r#"unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[], $5::text[]) AS x("id", "name", "ok", "createdAt", "meta")"#
        );
        assert!(select.ends_with(r#"CAST(x."meta" AS json)"#), "{select}");
        assert_eq!(column(Engine::Postgres, &COLS, "ok"), r#"x."ok""#);
        let (select, from) = batch_rows(Engine::Sqlite, &COLS);
        assert_eq!(
            select,
            "x.column1, x.column2, x.column3, x.column4, x.column5"
        );
        assert_eq!(column(Engine::Sqlite, &COLS, "ok"), "x.column3");
        let sql = format!("SELECT {select} FROM {from}");
        assert_eq!(
            sqlite_chunk(&sql, 2, 5),
            "SELECT x.column1, x.column2, x.column3, x.column4, x.column5 FROM (VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)) AS x"
        );
        // A batch is split so that no statement binds more than SQLite allows.
        assert_eq!(sqlite_rows_per_statement(14), 2_340);
        assert!(sqlite_rows_per_statement(14) * 14 <= SQLITE_MAX_PARAMS);
        assert_eq!(sqlite_rows_per_statement(40_000), 1);
    }

    /// A SQLite batch larger than one statement's parameters is written in
    /// several statements, every row once, in order, nulls and types kept.
    #[tokio::test]
    async fn a_sqlite_batch_spans_statements_whole() {
        #[derive(Serialize)]
        struct Small {
            id: String,
            ok: bool,
            n: Option<i64>,
        }
        const SMALL: [(&str, &str); 3] = [("id", "text"), ("ok", "boolean"), ("n", "bigint")];
        let per = sqlite_rows_per_statement(SMALL.len());
        let total = 2 * per + 17;
        let rows: Vec<Small> = (0..total)
            .map(|i| Small {
                id: format!("r{i:06}"),
                ok: i % 2 == 0,
                n: (i % 3 != 0).then_some(i as i64),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let db = crate::db::Db::connect(&url, 1).await.unwrap();
        let mut pc = db.acquire().await.unwrap();
        let mut conn = pc.conn();
        let Conn::Sqlite(c) = &mut conn else {
            unreachable!("a SQLite URL")
        };
        sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY, ok BOOLEAN, n INTEGER)")
            .execute(&mut **c)
            .await
            .unwrap();
        let (select, from) = batch_rows(Engine::Sqlite, &SMALL);
        let sql = format!(
            "INSERT INTO t (id, ok, n) SELECT {select} FROM {from} {WHERE_TRUE} ON CONFLICT DO NOTHING RETURNING id"
        );
        let ids = insert_returning(&mut conn, &sql, &SMALL, &rows, "test")
            .await
            .unwrap();
        assert_eq!(ids.len(), total);
        // Again: nothing new, and the count says so.
        let plain = format!(
            "INSERT INTO t (id, ok, n) SELECT {select} FROM {from} {WHERE_TRUE} ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            insert(&mut conn, &plain, &SMALL, &rows, "test")
                .await
                .unwrap(),
            0
        );
        let Conn::Sqlite(c) = &mut conn else {
            unreachable!("a SQLite URL")
        };
        let back: Vec<(String, bool, Option<i64>)> =
            sqlx::query_as("SELECT id, ok, n FROM t ORDER BY id")
                .fetch_all(&mut **c)
                .await
                .unwrap();
        assert_eq!(back.len(), total);
        for (i, (id, ok, n)) in back.into_iter().enumerate() {
            assert_eq!(id, format!("r{i:06}"));
            assert_eq!(ok, i % 2 == 0);
            assert_eq!(n, (i % 3 != 0).then_some(i as i64));
        }
        // A query over the rows reads them back the same way.
        let (_, from) = batch_rows(Engine::Sqlite, &SMALL);
        let q = format!(
            "SELECT t.id FROM {from} JOIN t ON t.id = {} WHERE t.ok",
            column(Engine::Sqlite, &SMALL, "id")
        );
        let found: Vec<(String,)> = fetch_rows(&mut conn, &q, &SMALL, &rows, "test")
            .await
            .unwrap();
        assert_eq!(found.len(), total.div_ceil(2));
    }

    #[test]
    fn a_field_of_the_wrong_type_is_an_error_not_a_guess() {
        #[derive(Serialize)]
        struct Bad {
            ok: &'static str,
        }
        let err = encode(&[("ok", "boolean")], &[Bad { ok: "yes" }])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`ok` is not of its column's type"), "{err}");
    }
}
