//! The outbox's SQL, one text for both engines wherever they agree.
//!
//! Sequence numbers come from the one row of `cutover_outbox_counter`: the
//! enqueuing transaction holds its lock until it commits, so `seq` order is
//! commit order and a worker never sees a later row of a user before an
//! earlier one has committed. All times are milliseconds.

use crate::db::{Conn, DbError, Engine, on_conn};

use super::Kind;

/// One row to write.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub msg_id: String,
    pub kind: Kind,
    pub event_type: String,
    /// Rows with the same key and destination go out one at a time, in order.
    pub ordering_key: Option<String>,
    pub destination: String,
    pub payload: String,
    /// When the first attempt is due (ms).
    pub due_at: i64,
}

/// A row as read back.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Row {
    pub seq: i64,
    pub msg_id: String,
    pub kind: String,
    pub event_type: String,
    pub ordering_key: Option<String>,
    pub destination: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
}

const ROW_COLUMNS: &str = "seq, msg_id, kind, event_type, ordering_key, destination, payload, status, \
     attempts, next_attempt_at, last_status, last_error, created_at, updated_at, delivered_at";

/// Write `rows` inside the caller's transaction. A row whose (message,
/// destination) already exists is left alone, so enqueuing is idempotent.
pub async fn enqueue(
    conn: &mut Conn<'_>,
    rows: &[NewDelivery],
    now_ms: i64,
) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len() as i64;
    let last: i64 = on_conn!(conn, |c| {
        sqlx::query_scalar(
        "UPDATE cutover_outbox_counter SET next_seq = next_seq + $1 WHERE id = 1 RETURNING next_seq"
    )
    .bind(n)
    .fetch_one(c)
    .await
    .map_err(DbError::query("taking outbox sequence numbers"))?
    });
    const INSERT: &str = "INSERT INTO cutover_outbox
        (seq, msg_id, kind, event_type, ordering_key, destination, payload, status,
         attempts, next_attempt_at, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $9, $9)
        ON CONFLICT (msg_id, destination) DO NOTHING";
    for (i, row) in rows.iter().enumerate() {
        let seq = last - n + 1 + i as i64;
        on_conn!(conn, |c| {
            sqlx::query(INSERT)
                .bind(seq)
                .bind(&row.msg_id)
                .bind(row.kind.as_str())
                .bind(&row.event_type)
                .bind(row.ordering_key.as_deref())
                .bind(&row.destination)
                .bind(&row.payload)
                .bind(row.due_at)
                .bind(now_ms)
                .execute(c)
                .await
                .map_err(DbError::query("writing an outbox row"))?;
        });
    }
    Ok(())
}

/// A claimed row: what one attempt needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub seq: i64,
    pub msg_id: String,
    pub kind: String,
    pub event_type: String,
    pub destination: String,
    pub payload: String,
    /// Including this attempt.
    pub attempts: i64,
}

/// Claim up to `limit` due rows for `owner` until `lease_until`. Only the
/// earliest pending row of each (destination, ordering key) is eligible, rows
/// of disabled destinations wait, and a leased row is someone else's until its
/// lease runs out. Run it in its own transaction.
pub async fn claim(
    conn: &mut Conn<'_>,
    owner: &str,
    now_ms: i64,
    lease_until: i64,
    limit: u32,
) -> Result<Vec<Claimed>, DbError> {
    let lock = match conn.engine() {
        Engine::Postgres => "FOR UPDATE OF o SKIP LOCKED",
        Engine::Sqlite => "",
    };
    let sql = format!(
        "UPDATE cutover_outbox
            SET attempts = attempts + 1, lease_until = $1, lease_owner = $2, updated_at = $3
          WHERE seq IN (
            SELECT o.seq FROM cutover_outbox o
             WHERE o.status = 'pending' AND o.next_attempt_at <= $3
               AND (o.lease_until IS NULL OR o.lease_until < $3)
               AND NOT EXISTS (SELECT 1 FROM cutover_outbox_destinations d
                                WHERE d.destination = o.destination AND d.disabled_at IS NOT NULL)
               AND (o.ordering_key IS NULL OR NOT EXISTS (
                     SELECT 1 FROM cutover_outbox e
                      WHERE e.destination = o.destination AND e.ordering_key = o.ordering_key
                        AND e.status = 'pending' AND e.seq < o.seq))
             ORDER BY o.seq LIMIT $4 {lock})
        RETURNING seq, msg_id, kind, event_type, destination, payload, attempts"
    );
    let mut rows: Vec<Claimed> = on_conn!(conn, |c| sqlx::query_as(&sql)
        .bind(lease_until)
        .bind(owner)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await
        .map_err(DbError::query("claiming outbox rows"))?);
    rows.sort_by_key(|r| r.seq);
    Ok(rows)
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub seq: i64,
    /// The HTTP status the destination answered, if it answered.
    pub status: Option<u16>,
    /// Why it failed (no secret, no link, no body of ours).
    pub error: Option<String>,
}

/// Record a delivered row; reset rows lose their payload (the link).
pub async fn mark_delivered(
    conn: &mut Conn<'_>,
    owner: &str,
    a: &Attempt,
    wipe_payload: bool,
    now_ms: i64,
) -> Result<(), DbError> {
    let sql = if wipe_payload {
        "UPDATE cutover_outbox SET status = 'delivered', delivered_at = $1, updated_at = $1,
            last_status = $2, last_error = NULL, lease_until = NULL, lease_owner = NULL, payload = '{}'
          WHERE seq = $3 AND lease_owner = $4"
    } else {
        "UPDATE cutover_outbox SET status = 'delivered', delivered_at = $1, updated_at = $1,
            last_status = $2, last_error = NULL, lease_until = NULL, lease_owner = NULL
          WHERE seq = $3 AND lease_owner = $4"
    };
    on_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(now_ms)
            .bind(a.status.map(i64::from))
            .bind(a.seq)
            .bind(owner)
            .execute(c)
            .await
            .map_err(DbError::query("recording a delivery"))?;
    });
    Ok(())
}

/// Record a failed attempt: retry at `retry_at`, or give up (`None`).
pub async fn mark_failed(
    conn: &mut Conn<'_>,
    owner: &str,
    a: &Attempt,
    retry_at: Option<i64>,
    wipe_payload: bool,
    now_ms: i64,
) -> Result<(), DbError> {
    let (status, next) = match retry_at {
        Some(t) => ("pending", t),
        None => ("failed", now_ms),
    };
    let wipe = if wipe_payload && retry_at.is_none() {
        ", payload = '{}'"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE cutover_outbox SET status = $1, next_attempt_at = $2, updated_at = $3,
            last_status = $4, last_error = $5, lease_until = NULL, lease_owner = NULL{wipe}
          WHERE seq = $6 AND lease_owner = $7"
    );
    on_conn!(conn, |c| {
        sqlx::query(&sql)
            .bind(status)
            .bind(next)
            .bind(now_ms)
            .bind(a.status.map(i64::from))
            .bind(a.error.as_deref())
            .bind(a.seq)
            .bind(owner)
            .execute(c)
            .await
            .map_err(DbError::query("recording a failed delivery"))?;
    });
    Ok(())
}

/// A destination answered well: it is not failing.
pub async fn destination_ok(
    conn: &mut Conn<'_>,
    destination: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    on_conn!(conn, |c| {
        sqlx::query(
            "UPDATE cutover_outbox_destinations SET failing_since = NULL, updated_at = $1
              WHERE destination = $2 AND failing_since IS NOT NULL",
        )
        .bind(now_ms)
        .bind(destination)
        .execute(c)
        .await
        .map_err(DbError::query("recording a healthy destination"))?;
    });
    Ok(())
}

/// A destination failed. When it has failed without a success for longer
/// than `disable_after_ms`, it is disabled; returns whether that happened now.
pub async fn destination_failed(
    conn: &mut Conn<'_>,
    destination: &str,
    now_ms: i64,
    disable_after_ms: Option<i64>,
) -> Result<bool, DbError> {
    on_conn!(conn, |c| {
        sqlx::query(
            "INSERT INTO cutover_outbox_destinations (destination, failing_since, updated_at)
             VALUES ($1, $2, $2)
             ON CONFLICT (destination) DO UPDATE
               SET failing_since = COALESCE(cutover_outbox_destinations.failing_since, $2),
                   updated_at = $2",
        )
        .bind(destination)
        .bind(now_ms)
        .execute(&mut *c)
        .await
        .map_err(DbError::query("recording a failing destination"))?;
        let Some(after) = disable_after_ms else {
            return Ok(false);
        };
        let disabled = sqlx::query(
            "UPDATE cutover_outbox_destinations SET disabled_at = $1, updated_at = $1
              WHERE destination = $2 AND disabled_at IS NULL AND failing_since <= $3",
        )
        .bind(now_ms)
        .bind(destination)
        .bind(now_ms - after)
        .execute(&mut *c)
        .await
        .map_err(DbError::query("disabling a destination"))?
        .rows_affected();
        Ok(disabled > 0)
    })
}

/// Enable a disabled destination again; its waiting rows go out.
pub async fn enable_destination(
    conn: &mut Conn<'_>,
    destination: &str,
    now_ms: i64,
) -> Result<bool, DbError> {
    let n = on_conn!(conn, |c| {
        sqlx::query(
        "UPDATE cutover_outbox_destinations SET disabled_at = NULL, failing_since = NULL, updated_at = $1
          WHERE destination = $2 AND disabled_at IS NOT NULL"
    )
    .bind(now_ms)
    .bind(destination)
    .execute(c)
    .await
    .map_err(DbError::query("enabling a destination"))?
    .rows_affected()
    });
    Ok(n > 0)
}

/// Destinations disabled now, with when.
pub async fn disabled_destinations(conn: &mut Conn<'_>) -> Result<Vec<(String, i64)>, DbError> {
    on_conn!(conn, |c| sqlx::query_as(
        "SELECT destination, disabled_at FROM cutover_outbox_destinations
          WHERE disabled_at IS NOT NULL ORDER BY destination"
    )
    .fetch_all(c)
    .await
    .map_err(DbError::query("reading disabled destinations")))
}

/// What `cutover webhooks list` asks for.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub event_type: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: u32,
}

/// Rows, newest first, bounded by `filter.limit`.
pub async fn list(conn: &mut Conn<'_>, filter: &ListFilter) -> Result<Vec<Row>, DbError> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM cutover_outbox
          WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR kind = $2)
            AND ($3 IS NULL OR event_type = $3) AND ($4 IS NULL OR created_at >= $4)
          ORDER BY seq DESC LIMIT $5"
    );
    on_conn!(conn, |c| sqlx::query_as::<_, Row>(&sql)
        .bind(filter.status.as_deref())
        .bind(filter.kind.as_deref())
        .bind(filter.event_type.as_deref())
        .bind(filter.since_ms)
        .bind(i64::from(filter.limit))
        .fetch_all(c)
        .await
        .map_err(DbError::query("listing outbox rows")))
}

/// What `cutover webhooks replay` re-sends.
#[derive(Debug, Clone)]
pub struct ReplayFilter {
    pub since_ms: i64,
    pub until_ms: Option<i64>,
    pub types: Vec<String>,
}

/// One message of the range, once (whatever its destinations).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub msg_id: String,
    pub event_type: String,
    pub ordering_key: Option<String>,
    pub payload: String,
    pub created_at: i64,
}

/// The webhook messages created in a range, oldest first (at most `limit`).
pub async fn messages_in_range(
    conn: &mut Conn<'_>,
    f: &ReplayFilter,
    limit: u32,
) -> Result<Vec<Message>, DbError> {
    let rows: Vec<Message> = on_conn!(conn, |c| sqlx::query_as(
        "SELECT msg_id, event_type, ordering_key, payload, MIN(created_at) AS created_at
           FROM cutover_outbox
          WHERE kind = 'webhook' AND created_at >= $1 AND ($2 IS NULL OR created_at < $2)
          GROUP BY msg_id, event_type, ordering_key, payload
          ORDER BY MIN(seq) LIMIT $3"
    )
    .bind(f.since_ms)
    .bind(f.until_ms)
    .bind(i64::from(limit))
    .fetch_all(c)
    .await
    .map_err(DbError::query("reading messages to replay"))?);
    Ok(rows
        .into_iter()
        .filter(|m| f.types.is_empty() || f.types.contains(&m.event_type))
        .collect())
}

/// Send `msg` to `destination` again: its row goes back to pending with a
/// fresh schedule (same `msg_id`, so consumers can tell it is the same
/// event), or a row is created when this destination never had it. The row
/// takes a new sequence number, so it goes out after what is queued now for
/// the same user, in the order of the replay.
pub async fn requeue(
    conn: &mut Conn<'_>,
    msg: &Message,
    destination: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    let seq: i64 = on_conn!(conn, |c| {
        sqlx::query_scalar(
        "UPDATE cutover_outbox_counter SET next_seq = next_seq + 1 WHERE id = 1 RETURNING next_seq"
    )
    .fetch_one(c)
    .await
    .map_err(DbError::query("taking an outbox sequence number"))?
    });
    on_conn!(conn, |c| {
        sqlx::query(
            "INSERT INTO cutover_outbox
                (seq, msg_id, kind, event_type, ordering_key, destination, payload, status,
                 attempts, next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, 'webhook', $3, $4, $5, $6, 'pending', 0, $7, $8, $7)
             ON CONFLICT (msg_id, destination) DO UPDATE
               SET seq = $1, status = 'pending', attempts = 0, next_attempt_at = $7,
                   updated_at = $7, lease_until = NULL, lease_owner = NULL, delivered_at = NULL",
        )
        .bind(seq)
        .bind(&msg.msg_id)
        .bind(&msg.event_type)
        .bind(msg.ordering_key.as_deref())
        .bind(destination)
        .bind(&msg.payload)
        .bind(now_ms)
        .bind(msg.created_at)
        .execute(c)
        .await
        .map_err(DbError::query("requeuing a message"))?;
    });
    Ok(())
}

/// Counts for metrics and `cutover webhooks list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: i64,
    /// Pending and due now (the queue depth a worker works down).
    pub due: i64,
    pub delivered: i64,
    pub failed: i64,
    /// The oldest pending row's creation time (ms), if any.
    pub oldest_pending_ms: Option<i64>,
}

pub async fn counts(conn: &mut Conn<'_>, now_ms: i64) -> Result<Counts, DbError> {
    let rows: Vec<(String, i64, i64, Option<i64>)> = on_conn!(conn, |c| sqlx::query_as(
        "SELECT status, COUNT(*),
                SUM(CASE WHEN next_attempt_at <= $1 THEN 1 ELSE 0 END),
                MIN(created_at)
           FROM cutover_outbox GROUP BY status"
    )
    .bind(now_ms)
    .fetch_all(c)
    .await
    .map_err(DbError::query("counting outbox rows"))?);
    let mut out = Counts::default();
    for (status, n, due, oldest) in rows {
        match status.as_str() {
            "pending" => {
                out.pending = n;
                out.due = due;
                out.oldest_pending_ms = oldest;
            }
            "delivered" => out.delivered = n,
            _ => out.failed = n,
        }
    }
    Ok(out)
}

/// Delete delivered and failed rows last changed before `before_ms`, at most
/// `limit` at a time. Returns how many went.
pub async fn purge(conn: &mut Conn<'_>, before_ms: i64, limit: u32) -> Result<u64, DbError> {
    on_conn!(conn, |c| Ok(sqlx::query(
        "DELETE FROM cutover_outbox WHERE seq IN (
            SELECT seq FROM cutover_outbox
             WHERE status IN ('delivered', 'failed') AND updated_at < $1
             ORDER BY seq LIMIT $2)"
    )
    .bind(before_ms)
    .bind(i64::from(limit))
    .execute(c)
    .await
    .map_err(DbError::query("purging old outbox rows"))?
    .rows_affected()))
}
