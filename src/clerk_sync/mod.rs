//! The live half of the migration while Clerk still runs (DESIGN.md, "The
//! live half"): Clerk's webhooks in, and live password verification.
//!
//! # Layout
//! - `event.rs` — a webhook body into an [`event::Event`] (pure; the Backend
//!   API checks of `import`);
//! - `endpoint.rs` — the webhook endpoint on the public listener: body limit
//!   and read deadline, Svix signature exactly as Clerk's `verifyWebhook`
//!   checks it, then [`ClerkSync::apply`];
//! - `live.rs` — `POST /v1/users/{id}/verify_password` with bounded
//!   concurrency, a short deadline and a circuit breaker, and the pure
//!   decision of what a sign-in does with Clerk's answer.
//!
//! # Applying an event
//! One transaction per delivery: the `svix-id` is recorded first
//! (`cutover_clerk_events`; a retried delivery finds it and changes nothing),
//! the event's version is compared with the newest applied to its object
//! (`cutover_clerk_objects`; an older change or anything after a deletion is
//! recorded as `stale` and changes nothing), the change goes through the
//! import's own mapping ([`crate::import::plan`]) and writers
//! ([`crate::import::store`], `refresh`), and only after the commit does the
//! endpoint answer 2xx. Revoked Kernia sessions and changed ledger rows are
//! then broadcast so every cutover copy forgets what it cached.

pub mod endpoint;
pub mod event;
pub mod live;

use tokio::sync::OnceCell;

use crate::config::ClerkSyncConfig;
use crate::db::{Conn, Db, DbError, now_secs, on_conn};
use crate::import::RoleMap;
use crate::import::plan::{self, Planned, UserGroup};
use crate::import::report::Counters;
use crate::import::store::ImportSchema;
use crate::import::store::refresh::{self, RowRefresh, UserRefresh};
use crate::state::SharedState;
use crate::svix::SigningSecret;
use event::{Event, Parsed};

/// What applying one delivery did (one word each, for the answer and the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The change is committed.
    Applied,
    /// This svix-id was applied before: nothing changed.
    Duplicate,
    /// Older than what was applied to the object already: nothing changed.
    Stale,
    /// Not an event the sync acts on.
    Ignored,
    /// Signed, but not a usable event (recorded, not retried).
    Invalid,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Applied => "applied",
            Applied::Duplicate => "duplicate",
            Applied::Stale => "stale",
            Applied::Ignored => "ignored",
            Applied::Invalid => "invalid",
        }
    }
}

/// Clerk's webhooks in: settings and what applying needs.
pub struct ClerkSync {
    db: Db,
    state: SharedState,
    pub(crate) secret: SigningSecret,
    pub path: String,
    pub(crate) body_limit: usize,
    pub(crate) read_timeout: std::time::Duration,
    roles: RoleMap,
    /// Read on the first event (Kernia may create its tables after cutover starts).
    schema: OnceCell<ImportSchema>,
}

impl ClerkSync {
    /// `None` when no webhook secret is configured (the endpoint is off).
    pub fn new(
        cfg: &ClerkSyncConfig,
        roles: RoleMap,
        db: Db,
        state: SharedState,
    ) -> Option<ClerkSync> {
        let secret = SigningSecret::parse(cfg.webhook_secret.as_ref()?.expose()).ok()?;
        Some(ClerkSync {
            db,
            state,
            secret,
            path: cfg.webhook_path.clone(),
            body_limit: cfg.webhook_body_bytes,
            read_timeout: cfg.webhook_read_timeout,
            roles,
            schema: OnceCell::new(),
        })
    }

    /// Whether a request path is the webhook endpoint.
    pub fn is_endpoint(&self, path: &str) -> bool {
        path == self.path
    }

    async fn schema(&self) -> Result<&ImportSchema, DbError> {
        self.schema
            .get_or_try_init(|| ImportSchema::read(&self.db))
            .await
    }

    /// Apply one verified delivery, exactly once, and commit before returning.
    pub async fn apply(&self, svix_id: &str, parsed: &Parsed) -> Result<Applied, DbError> {
        let schema = self.schema().await?.clone();
        let now = now_secs();
        let mut tx = self.db.begin().await?;
        if !record_event(&mut tx.conn(), svix_id, parsed, now).await? {
            return Ok(Applied::Duplicate);
        }
        let mut after = Broadcast::default();
        let outcome = self
            .apply_in(&mut tx.conn(), &schema, parsed, now, &mut after)
            .await?;
        set_outcome(&mut tx.conn(), svix_id, outcome).await?;
        tx.commit().await?;
        after.send(&self.state).await;
        Ok(outcome)
    }

    /// Record a signed delivery that is not a usable event, so its retries are
    /// recognised too.
    pub async fn record_invalid(&self, svix_id: &str, event_type: &str) -> Result<(), DbError> {
        let mut conn = self.db.acquire().await?;
        const SQL: &str = "INSERT INTO cutover_clerk_events (svix_id, event_type, object_id, outcome, received_at)
            VALUES ($1, $2, NULL, 'invalid', $3) ON CONFLICT (svix_id) DO NOTHING";
        on_conn!(&mut conn.conn(), |c| {
            sqlx::query(SQL)
                .bind(svix_id)
                .bind(event_type)
                .bind(now_secs())
                .execute(c)
                .await
                .map_err(DbError::query("recording a webhook"))?;
        });
        Ok(())
    }

    async fn apply_in(
        &self,
        conn: &mut Conn<'_>,
        schema: &ImportSchema,
        parsed: &Parsed,
        now: i64,
        after: &mut Broadcast,
    ) -> Result<Applied, DbError> {
        let Some(object_id) = parsed.object_id() else {
            return Ok(Applied::Ignored);
        };
        // Two deliveries about one object apply one after the other (SQLite's
        // write lock already serialises every transaction).
        if let Conn::Postgres(c) = conn {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(object_id)
                .execute(&mut **c)
                .await
                .map_err(DbError::query("locking a Clerk object"))?;
        }
        if !is_newer(conn, object_id, parsed.version_ms).await? {
            return Ok(Applied::Stale);
        }
        let mut c = Counters::default();
        let mut issues = Vec::new();
        let result = match &parsed.event {
            Event::Ignored => return Ok(Applied::Ignored),
            Event::UserUpsert(api) => {
                let group = UserGroup {
                    id: api.id.clone(),
                    csv: Vec::new(),
                    api: vec![(**api).clone()],
                    bad: Vec::new(),
                };
                match plan::plan(group, "webhook", now) {
                    Planned::User(p) => {
                        let r = refresh::user(conn, schema, *p, &mut c, &mut issues).await?;
                        after.tokens.extend(r.revoked_tokens.iter().cloned());
                        after.users.push(api.id.clone());
                        tracing::info!(user_id = %api.id, outcome = ?r.outcome, stale = r.stale, banned = r.banned, "Clerk user change");
                        !matches!(r.outcome, UserRefresh::Skipped(_))
                    }
                    Planned::Invalid(i) => {
                        let detail: Vec<&str> = i.iter().map(|x| x.message.as_str()).collect();
                        tracing::warn!(user_id = %api.id, problems = %detail.join("; "), "a Clerk user cannot be mapped");
                        false
                    }
                }
            }
            Event::UserDeleted { id } => {
                if let Some(tokens) = refresh::remove_user(conn, schema, id).await? {
                    after.tokens.extend(tokens);
                    after.users.push(id.clone());
                    tracing::info!(user_id = %id, "user deleted at Clerk: removed, sessions revoked");
                }
                true
            }
            Event::OrgUpsert(o) if schema.organizations() => {
                refresh::organization(conn, o.clone(), now, &mut c, &mut issues).await?
                    != RowRefresh::Skipped
            }
            Event::OrgDeleted { id } if schema.organizations() => {
                refresh::delete_organization(conn, id).await?;
                true
            }
            Event::MemberUpsert(m) if schema.organizations() => {
                refresh::member(conn, m.clone(), &self.roles, now, &mut c, &mut issues).await?
                    != RowRefresh::Skipped
            }
            Event::MemberDeleted { id } if schema.organizations() => {
                refresh::delete_member(conn, id).await?;
                true
            }
            Event::InviteCreated(i) if schema.organizations() => {
                refresh::invitation(conn, i.clone(), &self.roles, now, &mut c, &mut issues).await?
                    != RowRefresh::Skipped
            }
            Event::InviteClosed { id, status } if schema.organizations() => {
                refresh::close_invitation(conn, id, status).await?;
                true
            }
            // Kernia runs without the organization plugin: nothing to write.
            _ => return Ok(Applied::Ignored),
        };
        for issue in &issues {
            tracing::warn!(kind = issue.kind.as_str(), id = issue.id.as_deref().unwrap_or("-"), message = %issue.message, "Clerk change not fully applied");
        }
        // A change that could not be written (a conflict, a missing user) is
        // not remembered as applied: a later, fixed delivery may still apply.
        if result || parsed.is_deletion() {
            remember(conn, object_id, parsed, now).await?;
        }
        Ok(Applied::Applied)
    }
}

/// What to tell every copy once the transaction is committed.
#[derive(Default)]
struct Broadcast {
    tokens: Vec<String>,
    users: Vec<String>,
}

impl Broadcast {
    async fn send(self, state: &SharedState) {
        let topics = self
            .tokens
            .iter()
            .map(|t| crate::identify::kernia::topic(t))
            .chain(self.users.iter().map(|u| crate::db::ledger::topic(u)));
        for topic in topics {
            if let Err(e) = state.invalidate(&topic).await {
                tracing::warn!(error = %e, "cannot broadcast a Clerk change; other copies learn it when their cache expires");
            }
        }
    }
}

/// Record a delivery; false when its svix-id was recorded before.
async fn record_event(
    conn: &mut Conn<'_>,
    svix_id: &str,
    parsed: &Parsed,
    now: i64,
) -> Result<bool, DbError> {
    const SQL: &str =
        "INSERT INTO cutover_clerk_events (svix_id, event_type, object_id, outcome, received_at)
        VALUES ($1, $2, $3, 'applying', $4) ON CONFLICT (svix_id) DO NOTHING";
    let n = on_conn!(conn, |c| sqlx::query(SQL)
        .bind(svix_id)
        .bind(&parsed.event_type)
        .bind(parsed.object_id())
        .bind(now)
        .execute(c)
        .await
        .map_err(DbError::query("recording a webhook"))?
        .rows_affected());
    Ok(n > 0)
}

async fn set_outcome(conn: &mut Conn<'_>, svix_id: &str, outcome: Applied) -> Result<(), DbError> {
    const SQL: &str = "UPDATE cutover_clerk_events SET outcome = $1 WHERE svix_id = $2";
    on_conn!(conn, |c| {
        sqlx::query(SQL)
            .bind(outcome.as_str())
            .bind(svix_id)
            .execute(c)
            .await
            .map_err(DbError::query("recording a webhook"))?;
    });
    Ok(())
}

/// Whether a change of `version_ms` is newer than anything applied to the
/// object (and the object was not deleted).
async fn is_newer(conn: &mut Conn<'_>, object_id: &str, version_ms: i64) -> Result<bool, DbError> {
    const SQL: &str = "SELECT version, deleted FROM cutover_clerk_objects WHERE object_id = $1";
    let row: Option<(i64, bool)> = on_conn!(conn, |c| sqlx::query_as(SQL)
        .bind(object_id)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("reading a Clerk object's version"))?);
    Ok(match row {
        None => true,
        Some((_, true)) => false,
        Some((applied, false)) => version_ms > applied,
    })
}

async fn remember(
    conn: &mut Conn<'_>,
    object_id: &str,
    parsed: &Parsed,
    now: i64,
) -> Result<(), DbError> {
    const SQL: &str =
        "INSERT INTO cutover_clerk_objects (object_id, kind, version, deleted, updated_at)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (object_id) DO UPDATE SET version = excluded.version,
            deleted = excluded.deleted, updated_at = excluded.updated_at
        WHERE cutover_clerk_objects.version <= excluded.version OR excluded.deleted";
    on_conn!(conn, |c| {
        sqlx::query(SQL)
            .bind(object_id)
            .bind(parsed.kind())
            .bind(parsed.version_ms)
            .bind(parsed.is_deletion())
            .bind(now)
            .execute(c)
            .await
            .map_err(DbError::query("recording a Clerk object's version"))?;
    });
    Ok(())
}
