//! The outbox: durable, retried delivery of everything cutover sends after a
//! commit — reset mail, reset webhooks and Clerk-shaped webhooks.
//!
//! A message is written to `cutover_outbox` ([`store`]) in the same transaction
//! as the change it announces (a reset token, a migrated credential), or right
//! after Kernia's answer when the change is Kernia's own. So a sign-in never
//! waits on a mail server or a consumer, and a crash after the commit loses
//! nothing: the row is there when any copy starts again.
//!
//! A [`worker`] on every copy claims due rows in small batches — `FOR UPDATE
//! SKIP LOCKED` on PostgreSQL, the single writer lock on SQLite — with a lease:
//! a copy killed mid-delivery loses its claim when the lease runs out and the
//! row is delivered again, under the same `svix-id`. Retries follow Svix's
//! schedule (`[outbox] retry_schedule_secs`); only a 2xx within the delivery
//! timeout counts. Rows with the same ordering key (the user) and destination go
//! out one at a time in commit order: a later event for a user waits for the
//! earlier ones. A destination that fails without a success for
//! `disable_after_days` is disabled until `cutover webhooks enable`.
//!
//! # Layout
//! - `store.rs` — the SQL: enqueue, claim, record outcomes, list, replay, counts
//! - `schedule.rs` — what happens after an attempt (pure)
//! - `send.rs` — one attempt: a signed webhook POST or a reset mail
//! - `worker.rs` — the loop, its wake-up and its graceful stop

mod schedule;
pub mod send;
pub mod store;
pub mod worker;

use std::fmt;
use std::str::FromStr;

pub use schedule::{Next, after_attempt};
pub use store::{Counts, NewDelivery, Row};
pub use worker::{DeliveryCounters, Waker, Worker, WorkerHandle};

/// What a row delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A reset link by mail (`[reset.smtp]`).
    ResetMail,
    /// A reset link to the app (`[reset.webhook]`).
    ResetWebhook,
    /// A Clerk-shaped event to a `[[webhooks.endpoints]]` consumer.
    Webhook,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ResetMail => "reset_mail",
            Kind::ResetWebhook => "reset_webhook",
            Kind::Webhook => "webhook",
        }
    }

    /// Reset rows carry a live reset link: their payload is wiped once they
    /// are delivered or given up, and they are never replayed.
    pub fn is_reset(self) -> bool {
        matches!(self, Kind::ResetMail | Kind::ResetWebhook)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Kind::ResetMail, Kind::ResetWebhook, Kind::Webhook]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown outbox kind `{s}`"))
    }
}

/// The destination name of reset mail rows (the `[reset.smtp]` server).
pub const RESET_MAIL: &str = "reset-mail";
/// The destination name of reset webhook rows (the `[reset.webhook]` URL).
pub const RESET_WEBHOOK: &str = "reset-webhook";

/// A fresh message id as Svix makes them: `msg_` and 27 base62 characters.
/// The same id goes out on every attempt and every replay of the message.
pub fn new_msg_id() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let tail: String = (0..27)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("msg_{tail}")
}

/// Milliseconds since the Unix epoch: the outbox's unit of time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_look_like_svix_ids_and_differ() {
        let a = new_msg_id();
        let b = new_msg_id();
        assert!(a.starts_with("msg_") && a.len() == 31, "{a}");
        assert!(a[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn kinds_round_trip() {
        for k in [Kind::ResetMail, Kind::ResetWebhook, Kind::Webhook] {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
        }
        assert!("mail".parse::<Kind>().is_err());
    }
}
