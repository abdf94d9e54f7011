//! Delivering password-reset links: by mail (SMTP, lettre) and/or a signed
//! webhook to the app (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`).
//!
//! Kernia 0.1.0 sends no reset mail itself. The link carries the token in
//! plaintext, so neither the link nor the token is ever logged.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use sha2::Sha256;

use crate::config::{ResetConfig, SmtpConfig, WebhookConfig};

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
    #[error("webhook delivery failed: {0}")]
    Webhook(String),
}

pub struct Notifier {
    smtp: Option<(AsyncSmtpTransport<Tokio1Executor>, SmtpConfig)>,
    webhook: Option<(reqwest::Client, WebhookConfig)>,
}

impl Notifier {
    pub fn new(cfg: &ResetConfig) -> Result<Notifier, NotifyError> {
        let smtp = match &cfg.smtp {
            Some(s) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(s.url.expose())?
                    .timeout(Some(Duration::from_secs(10)))
                    .build();
                Some((transport, s.clone()))
            }
            None => None,
        };
        let webhook = match &cfg.webhook {
            Some(w) => {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| NotifyError::Webhook(e.to_string()))?;
                Some((client, w.clone()))
            }
            None => None,
        };
        Ok(Notifier { smtp, webhook })
    }

    /// Deliver through every configured channel; succeeds when at least one did.
    pub async fn deliver(&self, notice: &ResetNotice<'_>) -> Result<(), NotifyError> {
        let mut last_error = None;
        let mut delivered = false;
        if let Some((transport, cfg)) = &self.smtp {
            match send_mail(transport, cfg, notice).await {
                Ok(()) => {
                    crate::metrics::record_reset_delivery("email", "sent");
                    delivered = true
                }
                Err(e) => {
                    crate::metrics::record_reset_delivery("email", "failed");
                    last_error = Some(e)
                }
            }
        }
        if let Some((client, cfg)) = &self.webhook {
            match send_webhook(client, cfg, notice).await {
                Ok(()) => {
                    crate::metrics::record_reset_delivery("webhook", "sent");
                    delivered = true
                }
                Err(e) => {
                    crate::metrics::record_reset_delivery("webhook", "failed");
                    last_error = Some(e)
                }
            }
        }
        match (delivered, last_error) {
            (true, Some(e)) => {
                tracing::warn!(error = %e, "one reset channel failed; another delivered");
                Ok(())
            }
            (true, None) => Ok(()),
            (false, Some(e)) => Err(e),
            (false, None) => Err(NotifyError::Webhook(
                "no delivery channel configured".into(),
            )),
        }
    }
}

async fn send_mail(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    cfg: &SmtpConfig,
    n: &ResetNotice<'_>,
) -> Result<(), NotifyError> {
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
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(&cfg.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| NotifyError::Mail(e.to_string()))?;
    transport.send(message).await?;
    Ok(())
}

async fn send_webhook(
    client: &reqwest::Client,
    cfg: &WebhookConfig,
    n: &ResetNotice<'_>,
) -> Result<(), NotifyError> {
    let body = serde_json::json!({
        "type": "password_reset.required",
        "data": { "user_id": n.user_id, "email": n.email, "link": n.link, "expires_at": n.expires_at },
    })
    .to_string();
    let id = format!("msg_{}", crate::db::kernia::new_id());
    let timestamp = crate::db::now_secs().to_string();
    let signature = sign_webhook(cfg.secret.expose(), &id, &timestamp, &body);
    let resp = client
        .post(&cfg.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", &timestamp)
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| NotifyError::Webhook(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(NotifyError::Webhook(format!(
            "the app answered {}",
            resp.status()
        )));
    }
    Ok(())
}

/// `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`; a `whsec_` secret is
/// base64-decoded first, as Standard Webhooks libraries do.
pub fn sign_webhook(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    let key = match secret.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_else(|_| secret.as_bytes().to_vec()),
        None => secret.as_bytes().to_vec(),
    };
    let mut mac = match Hmac::<Sha256>::new_from_slice(&key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signature_matches_the_svix_test_vector() {
        // Svix's published test vector
        let sig = sign_webhook(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "1649367553",
            r#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }
}
