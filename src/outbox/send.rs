//! One delivery attempt: a Svix-signed POST (Clerk-shaped webhooks and the
//! reset webhook) or a reset mail over SMTP.
//!
//! A webhook carries `svix-id` (the row's stable `msg_…`), `svix-timestamp`
//! (this attempt's time, in seconds) and `svix-signature` (`v1,` HMAC-SHA256 of
//! `id.timestamp.body` with the destination's `whsec_` secret), plus the same
//! three under their unbranded `webhook-*` names. Only a 2xx answered within
//! the delivery timeout is a success; redirects are not followed.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::{Config, OutboxConfig, ResetConfig};
use crate::intercept::notify::{self, ResetNotice};
use crate::svix::SigningSecret;

use super::store::{Attempt, Claimed};
use super::{Kind, RESET_MAIL, RESET_WEBHOOK};

/// Where each destination is and how to sign for it, built from the
/// configuration.
pub struct Senders {
    http: reqwest::Client,
    /// Webhook destinations (consumer URLs and the reset webhook): URL and secret.
    hooks: HashMap<String, (String, SigningSecret)>,
    mail: Option<notify::Mailer>,
}

/// Why the senders could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SendSetupError {
    #[error("cannot build the webhook HTTP client: {0}")]
    Http(String),
    #[error(transparent)]
    Mail(#[from] notify::NotifyError),
}

impl Senders {
    pub fn new(cfg: &Config) -> Result<Senders, SendSetupError> {
        Senders::build(&cfg.outbox, cfg.reset.as_ref(), cfg.webhooks.as_ref())
    }

    pub fn build(
        outbox: &OutboxConfig,
        reset: Option<&ResetConfig>,
        webhooks: Option<&crate::config::WebhooksConfig>,
    ) -> Result<Senders, SendSetupError> {
        let http = reqwest::Client::builder()
            .timeout(outbox.delivery_timeout)
            .connect_timeout(outbox.delivery_timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendSetupError::Http(e.to_string()))?;
        let mut hooks = HashMap::new();
        if let Some(w) = reset.and_then(|r| r.webhook.as_ref()) {
            hooks.insert(RESET_WEBHOOK.to_string(), (w.url.clone(), w.secret.clone()));
        }
        if let Some(w) = webhooks {
            for e in &w.endpoints {
                hooks.insert(e.url.clone(), (e.url.clone(), e.secret.clone()));
            }
        }
        let mail = match reset.and_then(|r| r.smtp.as_ref()) {
            Some(smtp) => Some(notify::Mailer::new(smtp, outbox.delivery_timeout)?),
            None => None,
        };
        Ok(Senders { http, hooks, mail })
    }

    /// Whether anything is configured to deliver to.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty() && self.mail.is_none()
    }

    /// Make one attempt for a claimed row.
    pub async fn send(&self, row: &Claimed) -> Attempt {
        let result = match row.kind.parse::<Kind>() {
            Ok(Kind::ResetMail) => self.send_mail(row).await,
            Ok(Kind::ResetWebhook | Kind::Webhook) => self.send_hook(row).await,
            Err(e) => Err((None, e)),
        };
        match result {
            Ok(status) => Attempt {
                seq: row.seq,
                status: Some(status),
                error: None,
            },
            Err((status, error)) => Attempt {
                seq: row.seq,
                status,
                error: Some(error),
            },
        }
    }

    async fn send_hook(&self, row: &Claimed) -> Result<u16, (Option<u16>, String)> {
        let Some((url, secret)) = self.hooks.get(&row.destination) else {
            return Err((
                None,
                format!(
                    "`{}` is no longer a configured destination",
                    row.destination
                ),
            ));
        };
        let timestamp = crate::db::now_secs();
        let signature = secret.sign(&row.msg_id, timestamp, row.payload.as_bytes());
        let ts = timestamp.to_string();
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("svix-id", &row.msg_id)
            .header("svix-timestamp", &ts)
            .header("svix-signature", &signature)
            .header("webhook-id", &row.msg_id)
            .header("webhook-timestamp", &ts)
            .header("webhook-signature", &signature)
            .body(row.payload.clone())
            .send()
            .await
            .map_err(|e| (None, describe(e)))?;
        let status = resp.status();
        // The answer's body is not read (nor logged): a consumer's reply could
        // be of any size. Dropping it costs the pooled connection at most.
        drop(resp);
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err((
                Some(status.as_u16()),
                format!("the endpoint answered {status}"),
            ))
        }
    }

    async fn send_mail(&self, row: &Claimed) -> Result<u16, (Option<u16>, String)> {
        let Some(mailer) = &self.mail else {
            return Err((
                None,
                format!("{RESET_MAIL}: [reset.smtp] is no longer configured"),
            ));
        };
        let notice: StoredNotice = serde_json::from_str(&row.payload)
            .map_err(|_| (None, "the queued reset mail is unreadable".to_string()))?;
        let n = ResetNotice {
            user_id: &notice.user_id,
            email: notice.email.as_deref(),
            link: &notice.link,
            expires_at: notice.expires_at,
        };
        mailer
            .send(&n)
            .await
            .map(|()| 250)
            .map_err(|e| (None, e.to_string()))
    }
}

/// A reset link as queued: the payload of `reset_mail` rows.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct StoredNotice {
    pub user_id: String,
    pub email: Option<String>,
    pub link: String,
    pub expires_at: i64,
}

/// A transport error without the URL (it may carry credentials).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within the delivery timeout".into()
    } else if e.is_connect() {
        "cannot connect to the endpoint".into()
    } else {
        format!("request failed: {}", e.without_url())
    }
}
