//! Reset links: what is queued, and the mail that carries one.
//!
//! Kernia 0.1.0 sends no reset mail itself, so cutover does. A reset is not
//! delivered inside the sign-in: [`queue`] writes the link to the outbox in
//! the transaction that issues the token, and the outbox worker
//! ([`crate::outbox`]) sends the mail ([`Mailer`], SMTP via lettre) and/or the
//! signed webhook to the app after the commit, with retries. The link carries
//! the token in plaintext, so neither the link nor the token is ever logged,
//! and the outbox wipes the row's copy once delivered or given up.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use crate::config::{ResetConfig, SmtpConfig};
use crate::db::{Conn, DbError};
use crate::outbox::{self, Kind, NewDelivery, send::StoredNotice};

/// One reset to deliver.
pub struct ResetNotice<'a> {
    pub user_id: &'a str,
    pub email: Option<&'a str>,
    pub link: &'a str,
    pub expires_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the user has no email address to send the reset link to")]
    NoEmail,
    #[error("cannot build the reset mail: {0}")]
    Mail(String),
    #[error("SMTP delivery failed: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("SMTP delivery took longer than {0:?}")]
    Timeout(Duration),
}

/// Queue the reset for every configured channel, inside the caller's
/// transaction (the one that writes the token). Returns how many rows.
pub async fn queue(
    conn: &mut Conn<'_>,
    cfg: &ResetConfig,
    n: &ResetNotice<'_>,
    now_ms: i64,
) -> Result<usize, DbError> {
    let msg_id = outbox::new_msg_id();
    let mut rows = Vec::new();
    if cfg.smtp.is_some() && n.email.is_some() {
        let notice = StoredNotice {
            user_id: n.user_id.to_string(),
            email: n.email.map(str::to_string),
            link: n.link.to_string(),
            expires_at: n.expires_at,
        };
        rows.push(NewDelivery {
            msg_id: msg_id.clone(),
            kind: Kind::ResetMail,
            event_type: "password_reset.required".into(),
            ordering_key: Some(n.user_id.to_string()),
            destination: outbox::RESET_MAIL.into(),
            payload: serde_json::to_string(&notice).unwrap_or_default(),
            due_at: now_ms,
        });
    }
    if cfg.webhook.is_some() {
        rows.push(NewDelivery {
            msg_id,
            kind: Kind::ResetWebhook,
            event_type: "password_reset.required".into(),
            ordering_key: Some(n.user_id.to_string()),
            destination: outbox::RESET_WEBHOOK.into(),
            payload: webhook_body(n),
            due_at: now_ms,
        });
    }
    outbox::store::enqueue(conn, &rows, now_ms).await?;
    Ok(rows.len())
}

/// The reset webhook's body (unchanged from the synchronous sender it replaces).
pub fn webhook_body(n: &ResetNotice<'_>) -> String {
    serde_json::json!({
        "type": "password_reset.required",
        "data": { "user_id": n.user_id, "email": n.email, "link": n.link, "expires_at": n.expires_at },
    })
    .to_string()
}

/// Sends reset mail over one SMTP transport.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    cfg: SmtpConfig,
    timeout: Duration,
}

impl Mailer {
    pub fn new(cfg: &SmtpConfig, timeout: Duration) -> Result<Mailer, NotifyError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(cfg.url.expose())?
            .timeout(Some(timeout))
            .build();
        Ok(Mailer {
            transport,
            cfg: cfg.clone(),
            timeout,
        })
    }

    /// Send one reset mail; the whole exchange is bounded by the timeout.
    pub async fn send(&self, n: &ResetNotice<'_>) -> Result<(), NotifyError> {
        let message = build_mail(&self.cfg, n)?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(result) => result.map(|_| ()).map_err(NotifyError::from),
            Err(_) => Err(NotifyError::Timeout(self.timeout)),
        }
    }
}

fn build_mail(cfg: &SmtpConfig, n: &ResetNotice<'_>) -> Result<Message, NotifyError> {
    let to: Mailbox = n
        .email
        .ok_or(NotifyError::NoEmail)?
        .parse()
        .map_err(|e: lettre::address::AddressError| NotifyError::Mail(e.to_string()))?;
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|e: lettre::address::AddressError| NotifyError::Mail(e.to_string()))?;
    let body = format!(
        "Hello,\n\nWe have moved to a new sign-in system and need you to choose a new password.\n\
         Open this link to set it (it expires in about {} minutes):\n\n{}\n\n\
         If you did not try to sign in, you can ignore this message.\n",
        ((n.expires_at - crate::db::now_secs()).max(60) / 60),
        n.link
    );
    Message::builder()
        .from(from)
        .to(to)
        .subject(&cfg.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| NotifyError::Mail(e.to_string()))
}
