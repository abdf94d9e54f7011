//! Phase five: observe every request once, at the end, on every outcome.
//!
//! "Every outcome" includes a client that hangs up before the answer: the
//! driver holds an [`Observation`] for the whole request, and if the request's
//! future is dropped before it finishes, the observation is emitted from
//! `Drop` with status **499** (a panic in the request path gives 500).
//!
//! Two things observe a request:
//! - the **access log**: one structured line, target `cutover::access`, with
//!   method, path (never the query string), status, duration to the response
//!   head, upstream, provider and user id, route and reason, intercept's
//!   outcome, client address, and the error if there was one. Never a token,
//!   cookie, password or digest;
//! - every registered [`Observer`] (Prometheus request metrics, outgoing
//!   webhooks for completed sign-ins, …), in the order they were added.
//!
//! # Writing an observer
//!
//! ```no_run
//! use std::sync::Arc;
//! use cutover::proxy::observe::{Observer, Record};
//!
//! struct SignIns;
//!
//! impl Observer for SignIns {
//!     fn observe(&self, r: &Record<'_>) {
//!         // Kernia answered a request below its base path:
//!         if let Some(auth) = &r.ctx.auth
//!             && auth.path == "/sign-in/email"
//!             && auth.status.is_success()
//!         {
//!             let _user = auth.user_id.as_deref();
//!             let _token = auth.session_token.as_ref(); // `Secret`: never printed
//!         }
//!         let _labels = (r.ctx.upstream.map(|u| u.as_str()), r.status.as_u16(), r.duration);
//!     }
//! }
//! # fn register(app: &cutover::proxy::App) {
//! app.observers.add(Arc::new(SignIns));
//! # }
//! ```
//!
//! `observe` runs on the request's task (or in `Drop`), so it must be quick
//! and must not block: count, or hand the record's facts to a channel or an
//! outbox for slow work. A panicking observer is contained and logged.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::StatusCode;

use super::context::Ctx;

/// The status recorded for a request whose client went away before the answer.
pub const CLIENT_CLOSED: u16 = 499;

/// One finished request, as observers see it.
pub struct Record<'a> {
    /// Everything the phases found out (see [`Ctx`]'s fields): method, path,
    /// client, identity, route decision, upstream, intercept outcome, the
    /// Kernia exchange ([`Ctx::auth`]) and the error.
    pub ctx: &'a Ctx,
    /// The status sent; 499 when the client closed the request first.
    pub status: StatusCode,
    /// Time from the request head to the response head (or to the hang-up).
    pub duration: Duration,
    /// The client closed the request before cutover answered.
    pub client_closed: bool,
}

/// Something that wants to see every finished request.
pub trait Observer: Send + Sync + 'static {
    fn observe(&self, record: &Record<'_>);
}

/// The registered observers.
#[derive(Default)]
pub struct Observers {
    list: RwLock<Vec<Arc<dyn Observer>>>,
}

impl Observers {
    /// Register an observer; it sees every request finished from now on.
    pub fn add(&self, observer: Arc<dyn Observer>) {
        self.list
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(observer);
    }

    fn notify(&self, record: &Record<'_>) {
        // No allocation per request: observe under the read lock (only `add`
        // writes, rarely).
        let list = self.list.read().unwrap_or_else(|p| p.into_inner());
        for o in list.iter() {
            if catch_unwind(AssertUnwindSafe(|| o.observe(record))).is_err() {
                tracing::error!("an observer panicked; the request is unaffected");
            }
        }
    }
}

/// A request being observed. Emit with [`Observation::finish`]; dropped
/// without it, it emits 499 (client gone) or 500 (panic).
pub struct Observation {
    ctx: Ctx,
    observers: Arc<Observers>,
    done: bool,
}

impl Observation {
    pub fn start(ctx: Ctx, observers: Arc<Observers>) -> Observation {
        Observation {
            ctx,
            observers,
            done: false,
        }
    }

    pub fn ctx(&mut self) -> &mut Ctx {
        &mut self.ctx
    }

    /// The answer's head is ready: observe it.
    pub fn finish(mut self, status: StatusCode) {
        self.emit(status, false);
        self.done = true;
    }

    fn emit(&self, status: StatusCode, client_closed: bool) {
        let record = Record {
            ctx: &self.ctx,
            status,
            duration: self.ctx.started.elapsed(),
            client_closed,
        };
        access_log(&record);
        self.observers.notify(&record);
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let panicking = std::thread::panicking();
        let (status, why) = if panicking {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request path panicked",
            )
        } else {
            (
                StatusCode::from_u16(CLIENT_CLOSED).unwrap_or(StatusCode::BAD_REQUEST),
                "the client closed the request before the answer",
            )
        };
        if self.ctx.error.is_none() {
            self.ctx.error = Some(why.to_string());
        }
        self.emit(status, !panicking);
    }
}

/// The access line.
fn access_log(r: &Record<'_>) {
    let c = r.ctx;
    let duration_ms = r.duration.as_secs_f64() * 1000.0;
    tracing::info!(
        target: "cutover::access",
        method = %c.method,
        path = %c.path,
        status = r.status.as_u16(),
        duration_ms = (duration_ms * 1000.0).round() / 1000.0,
        upstream = c.upstream.map_or("-", |u| u.as_str()),
        provider = c.provider(),
        user_id = c.user_id().unwrap_or("-"),
        clerk_refusal = c.clerk_refusal.unwrap_or("-"),
        route = c.route(),
        reason = c.reason(),
        intercept = c.intercept.unwrap_or("-"),
        client = %c.client,
        tls = c.peer.tls,
        error = c.error.as_deref().unwrap_or("-"),
        "request"
    );
}
