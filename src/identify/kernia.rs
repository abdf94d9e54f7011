//! Kernia sessions: `better-auth.session_token` = `<token>.<sig>`.
//!
//! The cookie is read exactly as Kernia reads it ([`session_cookie`]): the
//! last occurrence wins and quotes are kept (a quoted value then fails the
//! signature, as it does in Kernia). Reading it any other way lets a client
//! send two values so that cutover names one user and Kernia serves another.
//!
//! `sig` is base64url (no padding) of HMAC-SHA256 keyed with Kernia's secret
//! over the 43-character token; it is checked in constant time, so a forged
//! cookie costs one HMAC and never reaches the database. A valid signature alone
//! is not a session: the token must still name an unexpired row of Kernia's
//! `session` table (a signed-out or expired session is gone or stale there).
//! Lookups are cached for a few seconds (`[kernia].session_cache_ms`), keyed by
//! a hash of the token, negative answers included; a sign-out through cutover
//! drops the entry on every copy at once (an invalidation message). A lookup
//! is bounded ([`crate::db::bounded`]): a slow or hung database answers
//! [`KerniaOutcome::Unverified`] within `[kernia].db_lookup_timeout_ms`, and
//! concurrent misses for one token share one query.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

use crate::db::bounded::{Bounded, SingleFlight};
use crate::db::{Db, DbError, kernia as kernia_db};

/// Kernia's session cookie. Not configurable in Kernia 0.1.0.
pub const COOKIE: &str = "better-auth.session_token";

/// A verified Kernia session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerniaIdentity {
    pub user_id: String,
    pub session_id: String,
    pub expires_at: i64,
    /// The identity headers' values, made on first use.
    pub header_values: super::HeaderValues,
}

/// What the Kernia cookie said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KerniaOutcome {
    NoCookie,
    /// Malformed, or signed with another secret.
    BadSignature,
    /// Correctly signed, but no live session (signed out, expired).
    NoSession,
    /// Correctly signed, but the database could not be asked.
    Unverified,
    SignedIn(Arc<KerniaIdentity>),
}

/// The cached answer for one token.
type Cached = Option<Arc<KerniaIdentity>>;

/// Checks Kernia session cookies, with a short cache.
pub struct KerniaSessions {
    secret: Vec<u8>,
    db: Db,
    bounded: Arc<Bounded>,
    flights: SingleFlight<[u8; 32], Option<Cached>>,
    cache: moka::sync::Cache<[u8; 32], Cached>,
}

impl KerniaSessions {
    pub fn new(secret: &str, db: Db, bounded: Arc<Bounded>, cache_for: Duration) -> KerniaSessions {
        KerniaSessions {
            secret: secret.as_bytes().to_vec(),
            db,
            bounded,
            flights: SingleFlight::default(),
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache_for.max(Duration::from_millis(1)))
                .build(),
        }
    }

    /// The verified token inside a cookie value, or `None` when the signature
    /// does not match.
    pub fn verified_token<'v>(&self, value: &'v str) -> Option<&'v str> {
        verified_token(&self.secret, value)
    }

    pub async fn identify(&self, headers: &http::HeaderMap, now: i64) -> KerniaOutcome {
        let outcome = self.identify_uncounted(headers, now).await;
        let word = match &outcome {
            KerniaOutcome::SignedIn(_) => "signed_in",
            KerniaOutcome::Unverified => "unverified",
            KerniaOutcome::NoSession => "no_session",
            KerniaOutcome::BadSignature => "bad_signature",
            KerniaOutcome::NoCookie => return outcome,
        };
        crate::metrics::record_identify("kernia", word);
        outcome
    }

    async fn identify_uncounted(&self, headers: &http::HeaderMap, now: i64) -> KerniaOutcome {
        let Some(value) = session_cookie(headers) else {
            return KerniaOutcome::NoCookie;
        };
        let Some(token) = self.verified_token(value) else {
            return KerniaOutcome::BadSignature;
        };
        let key = cache_key(token);
        let cached = match self.cache.get(&key) {
            Some(hit) => hit,
            None => {
                let lookup = async {
                    match self.bounded.run(self.lookup(token)).await {
                        Ok(found) => {
                            self.cache.insert(key, found.clone());
                            Some(found)
                        }
                        Err(crate::db::bounded::LookupError::Backoff) => None,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot look up a Kernia session");
                            None
                        }
                    }
                };
                // On the heap: the database lookup's future is large, and a
                // cached session (the common case) should not carry its size.
                match Box::pin(self.flights.run(key, lookup)).await {
                    Some(found) => found,
                    None => return KerniaOutcome::Unverified,
                }
            }
        };
        match cached {
            Some(id) if id.expires_at > now => KerniaOutcome::SignedIn(id),
            _ => KerniaOutcome::NoSession,
        }
    }

    async fn lookup(&self, token: &str) -> Result<Cached, DbError> {
        let mut conn = self.db.acquire().await?;
        let row = kernia_db::find_session(&mut conn.conn(), token).await?;
        Ok(row.map(|s| {
            Arc::new(KerniaIdentity {
                user_id: s.user_id,
                session_id: s.id,
                expires_at: s.expires_at,
                header_values: Default::default(),
            })
        }))
    }

    /// Forget a token (on sign-out).
    pub fn forget(&self, token: &str) {
        self.cache.invalidate(&cache_key(token));
    }

    /// Forget a token by its topic (an invalidation message from any copy).
    pub fn forget_topic(&self, topic: &str) {
        if let Some(hex_key) = topic.strip_prefix(TOPIC_PREFIX)
            && let Ok(bytes) = hex::decode(hex_key)
            && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
        {
            self.cache.invalidate(&key);
        }
    }

    pub fn forget_all(&self) {
        self.cache.invalidate_all();
    }
}

/// The session cookie's value, read as Kernia reads it (last occurrence,
/// quotes kept).
pub fn session_cookie(headers: &http::HeaderMap) -> Option<&str> {
    super::cookies::get_last_raw(headers, COOKIE)
}

const TOPIC_PREFIX: &str = "kernia-session:";

/// The invalidation topic of a token (its hash, never the token).
pub fn topic(token: &str) -> String {
    format!("{TOPIC_PREFIX}{}", hex::encode(cache_key(token)))
}

fn cache_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Split `<token>.<sig>` at the last dot and check the signature in constant time.
pub fn verified_token<'v>(secret: &[u8], value: &'v str) -> Option<&'v str> {
    let (token, sig) = value.rsplit_once('.')?;
    if token.is_empty() || token.len() > 256 {
        return None;
    }
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(token.as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(&sig).ok()?;
    Some(token)
}

/// Sign a token the way Kernia does (for tests and for minting sessions).
pub fn sign(secret: &[u8], token: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length.
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(token.as_bytes());
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{token}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_tampering() {
        let secret = b"cutover-test-secret-0123456789abcdef";
        let value = sign(secret, "g7x5Z8GuJAHVRkLtbb08rmoXwj66BGN1Yq1Sfj51JRU");
        assert_eq!(
            verified_token(secret, &value),
            Some("g7x5Z8GuJAHVRkLtbb08rmoXwj66BGN1Yq1Sfj51JRU")
        );
        assert_eq!(
            verified_token(b"another-secret-0123456789abcdef", &value),
            None
        );
        let mut tampered = value.clone();
        tampered.replace_range(0..1, "h");
        assert_eq!(verified_token(secret, &tampered), None);
        for junk in ["", ".", "abc", "abc.", ".sig", "abc.!!!", "a.b.c"] {
            assert_eq!(verified_token(secret, junk), None, "{junk}");
        }
    }

    #[test]
    fn matches_a_cookie_minted_by_a_real_kernia_server() {
        // From a Kernia 0.1.0 sign-up with secret `s3cretsecretsecretsecret`.
        let value = "g7x5Z8GuJAHVRkLtbb08rmoXwj66BGN1Yq1Sfj51JRU.TQ4Y7nQoRaCB_vwwDLAVYSykLaPI4QdP1e-JKC9fOqc";
        assert!(verified_token(b"s3cretsecretsecretsecret", value).is_some());
    }

    #[test]
    fn topics_carry_a_hash_not_the_token() {
        let t = topic("g7x5Z8GuJAHVRkLtbb08rmoXwj66BGN1Yq1Sfj51JRU");
        assert!(!t.contains("g7x5Z8"));
        assert_eq!(t.len(), TOPIC_PREFIX.len() + 64);
    }
}
