//! Live password verification while Clerk runs: `POST /v1/users/{id}/verify_password`
//! (reference `clerk.md` §3.3) for a sign-in no exported digest can decide —
//! the digest is missing, stale (the password changed at Clerk), `awscognito`
//! or of a hasher cutover does not know.
//!
//! Clerk's answer, and what the sign-in does with it ([`decide`], pure):
//!
//! | Clerk | sign-in |
//! |---|---|
//! | 200 `{verified: true}` | migrate exactly like a local verify |
//! | 422 (wrong password) | Kernia's answer stands |
//! | 400 (no password) / 404 (no such user) | the forced-reset path |
//! | 429, 5xx, timeout, unreachable, circuit open, no free slot | `503` + `Retry-After` for this sign-in only |
//!
//! Clerk must never lock anyone out or stall other traffic: at most
//! `live_concurrency` calls are in flight per copy (a sign-in waits at most
//! `live_queue_ms` for a slot), each has a `live_timeout_ms` deadline, and
//! `breaker_failures` failures in a row open a circuit for
//! `breaker_open_secs`, during which no call is made; then one probe goes
//! through, and its success closes the circuit. Only sign-ins that need Clerk
//! are affected; everything else never waits on it. The password goes to
//! Clerk in the request body over TLS and is never logged or kept.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::config::{LiveVerifyConfig, Secret};

/// What Clerk said (or why it said nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClerkAnswer {
    Verified,
    WrongPassword,
    NoPassword,
    UnknownUser,
    /// 429, with Clerk's `Retry-After` when it gave one.
    Throttled {
        retry_after_secs: Option<u64>,
    },
    /// 5xx, a timeout, a connection failure, an unexpected answer.
    Failed,
    /// The circuit is open: no call was made.
    CircuitOpen {
        retry_after_secs: u64,
    },
    /// Every slot was busy for longer than the queue wait.
    Saturated,
}

/// What the sign-in does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveDecision {
    /// Write Kernia's hash and mark the user migrated, in one transaction.
    Migrate,
    /// Forward to Kernia; its answer stands.
    KerniaDecides,
    /// The forced-reset path.
    Reset,
    /// `503` with `Retry-After` for this sign-in only.
    Busy { retry_after_secs: u64 },
}

/// Clerk's answer → the sign-in's next step.
pub fn decide(answer: ClerkAnswer) -> LiveDecision {
    match answer {
        ClerkAnswer::Verified => LiveDecision::Migrate,
        ClerkAnswer::WrongPassword => LiveDecision::KerniaDecides,
        ClerkAnswer::NoPassword | ClerkAnswer::UnknownUser => LiveDecision::Reset,
        ClerkAnswer::Throttled { retry_after_secs } => LiveDecision::Busy {
            retry_after_secs: retry_after_secs.unwrap_or(5).clamp(1, 300),
        },
        ClerkAnswer::Failed => LiveDecision::Busy {
            retry_after_secs: 5,
        },
        ClerkAnswer::CircuitOpen { retry_after_secs } => LiveDecision::Busy {
            retry_after_secs: retry_after_secs.max(1),
        },
        ClerkAnswer::Saturated => LiveDecision::Busy {
            retry_after_secs: 1,
        },
    }
}

/// The circuit breaker's state (per cutover copy).
#[derive(Debug)]
struct Breaker {
    threshold: u32,
    open_for: Duration,
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

impl Breaker {
    /// May a call go out now? `Err(seconds)` while the circuit is open.
    fn admit(&mut self, now: Instant) -> Result<(), u64> {
        match self.open_until {
            None => Ok(()),
            Some(until) if now < until => Err((until - now).as_secs().max(1)),
            Some(_) if self.probing => Err(1),
            Some(_) => {
                self.probing = true;
                Ok(())
            }
        }
    }

    fn record(&mut self, healthy: bool, now: Instant) {
        self.probing = false;
        if healthy {
            self.failures = 0;
            self.open_until = None;
        } else {
            self.failures = self.failures.saturating_add(1);
            if self.failures >= self.threshold || self.open_until.is_some() {
                self.open_until = Some(now + self.open_for);
            }
        }
    }
}

/// Calls Clerk's `verify_password`.
pub struct LiveVerifier {
    http: reqwest::Client,
    api_url: String,
    key: Secret,
    slots: Semaphore,
    queue_wait: Duration,
    breaker: Mutex<Breaker>,
    calls: AtomicU64,
}

impl LiveVerifier {
    pub fn new(cfg: &LiveVerifyConfig) -> Result<LiveVerifier, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(LiveVerifier {
            http,
            api_url: cfg.api_url.clone(),
            key: cfg.secret_key.clone(),
            slots: Semaphore::new(cfg.concurrency),
            queue_wait: cfg.queue_wait,
            breaker: Mutex::new(Breaker {
                threshold: cfg.breaker_failures,
                open_for: cfg.breaker_open,
                failures: 0,
                open_until: None,
                probing: false,
            }),
            calls: AtomicU64::new(0),
        })
    }

    /// Calls made to Clerk so far (for tests and metrics).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Ask Clerk whether `password` is `user_id`'s password.
    pub async fn verify(&self, user_id: &str, password: &str) -> ClerkAnswer {
        // Clerk ids are `user_` + base62: anything else cannot be put in a path.
        if user_id.is_empty()
            || !user_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return ClerkAnswer::UnknownUser;
        }
        let permit = match tokio::time::timeout(self.queue_wait, self.slots.acquire()).await {
            Ok(Ok(p)) => p,
            _ => return ClerkAnswer::Saturated,
        };
        let admitted = self.lock_breaker().admit(Instant::now());
        if let Err(secs) = admitted {
            return ClerkAnswer::CircuitOpen {
                retry_after_secs: secs,
            };
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let answer = self.call(user_id, password).await;
        drop(permit);
        let healthy = !matches!(answer, ClerkAnswer::Failed | ClerkAnswer::Throttled { .. });
        self.lock_breaker().record(healthy, Instant::now());
        answer
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // A poisoned lock only means another task panicked mid-update; the
        // counters are still usable.
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn call(&self, user_id: &str, password: &str) -> ClerkAnswer {
        let url = format!("{}/users/{user_id}/verify_password", self.api_url);
        let sent = self
            .http
            .post(&url)
            .bearer_auth(self.key.expose())
            .header("accept", "application/json")
            .json(&serde_json::json!({ "password": password }))
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                // reqwest's error names the URL (a user id), never the body.
                let timeout = e.is_timeout();
                tracing::warn!(error = %e.without_url(), timeout, "Clerk's verify_password did not answer");
                return ClerkAnswer::Failed;
            }
        };
        let status = resp.status().as_u16();
        match status {
            200 => {
                #[derive(serde::Deserialize)]
                struct Verified {
                    verified: Option<bool>,
                }
                match resp.json::<Verified>().await {
                    Ok(Verified {
                        verified: Some(true),
                    }) => ClerkAnswer::Verified,
                    Ok(_) => ClerkAnswer::WrongPassword,
                    Err(_) => ClerkAnswer::Failed,
                }
            }
            422 => ClerkAnswer::WrongPassword,
            400 => ClerkAnswer::NoPassword,
            404 => ClerkAnswer::UnknownUser,
            429 => ClerkAnswer::Throttled {
                retry_after_secs: resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok()),
            },
            _ => {
                tracing::warn!(status, "Clerk's verify_password failed");
                ClerkAnswer::Failed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_has_one_next_step() {
        assert_eq!(decide(ClerkAnswer::Verified), LiveDecision::Migrate);
        assert_eq!(
            decide(ClerkAnswer::WrongPassword),
            LiveDecision::KerniaDecides
        );
        assert_eq!(decide(ClerkAnswer::NoPassword), LiveDecision::Reset);
        assert_eq!(decide(ClerkAnswer::UnknownUser), LiveDecision::Reset);
        assert_eq!(
            decide(ClerkAnswer::Throttled {
                retry_after_secs: Some(7)
            }),
            LiveDecision::Busy {
                retry_after_secs: 7
            }
        );
        assert_eq!(
            decide(ClerkAnswer::Throttled {
                retry_after_secs: None
            }),
            LiveDecision::Busy {
                retry_after_secs: 5
            }
        );
        assert_eq!(
            decide(ClerkAnswer::Failed),
            LiveDecision::Busy {
                retry_after_secs: 5
            }
        );
        assert_eq!(
            decide(ClerkAnswer::Saturated),
            LiveDecision::Busy {
                retry_after_secs: 1
            }
        );
    }

    #[test]
    fn the_breaker_opens_after_repeated_failures_and_one_probe_closes_it() {
        let mut b = Breaker {
            threshold: 3,
            open_for: Duration::from_secs(30),
            failures: 0,
            open_until: None,
            probing: false,
        };
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(b.admit(t0).is_ok());
            b.record(false, t0);
        }
        assert!(b.admit(t0).is_ok(), "two failures do not open it");
        b.record(false, t0);
        assert_eq!(b.admit(t0), Err(30), "the third does");
        let later = t0 + Duration::from_secs(31);
        assert!(b.admit(later).is_ok(), "one probe after the open period");
        assert_eq!(b.admit(later), Err(1), "only one at a time");
        b.record(false, later);
        assert!(b.admit(later).is_err(), "a failed probe opens it again");
        let again = later + Duration::from_secs(31);
        assert!(b.admit(again).is_ok());
        b.record(true, again);
        assert!(b.admit(again).is_ok(), "a good probe closes it");
        assert_eq!(b.failures, 0);
    }
}
