//! Clerk session tokens: is this request signed in at Clerk, and as whom?
//!
//! Clerk cannot be asked per request, so its session tokens (short-lived JWTs
//! signed with the instance's RSA key) are verified offline, the way Clerk's
//! own SDKs do, held to Clerk's session-token rules. The answer
//! is a [`ClerkOutcome`]: signed in with a [`ClerkIdentity`], signed out with a
//! typed [`SignedOutReason`], or no token at all.
//!
//! # Layout
//!
//! Decisions are pure; only `jwks*.rs` does I/O.
//! - `source.rs` — which token a request carries (header, suffixed or plain
//!   cookie) and its `__client_uat`; [`cookie_suffix`], [`ClerkCookieNames`].
//! - `jwt.rs` — the compact JWS: header rules (`alg`, `typ`, `cat`) and the
//!   RSA signature.
//! - `claims.rs` — the clock-free claim checks (`sub`, `azp`, `iss`, `sid`,
//!   `sts`) and v1/v2 claims → [`ClerkIdentity`].
//! - `permissions.rs` — v2 `fpm` bitmasks → permission keys.
//! - `decide.rs` — the per-request checks: time (`exp`/`nbf`/`iat` with skew)
//!   and sign-out through `__client_uat`.
//! - `cache.rs` — verified tokens by SHA-256 until their `exp`.
//! - `jwks.rs`, `jwks_fetch.rs` — the JWKS key store and its downloads.
//! - `reason.rs` — [`SignedOutReason`].
//!
//! # Order of work for one request
//!
//! 1. Find the token. None → [`ClerkOutcome::NoToken`].
//! 2. Cookie token with `__client_uat` missing or `0` → signed out, no crypto.
//! 3. Cache hit → step 6. Otherwise: header rules; the key (PEM, or JWKS by
//!    `kid`, refetching on a miss within the rate limit); the signature —
//!    before any claim is looked at; then the clock-free claim checks.
//! 4. A good signature's result (identity or lasting refusal) is cached.
//! 5. Failures before that (bad signature, unknown `kid`…) are not cached.
//! 6. Time checks and `iat < __client_uat` against this request, every time.
//!
//! Nothing here logs per request, and nothing ever logs a token: the caller
//! logs the outcome (with [`SignedOutReason::as_str`]) once, at the end.

mod cache;
mod claims;
mod decide;
mod jwks;
mod jwks_fetch;
mod jwt;
mod key;
mod permissions;
mod reason;
mod source;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{ClerkConfig, ClerkKeys};

pub use claims::{ClerkIdentity, ClerkOrg};
pub use reason::SignedOutReason;
pub use source::{ClerkCookieNames, cookie_suffix, is_clerk_cookie};

use cache::VerifiedCache;
use claims::{Policy, RawClaims};
use decide::Verified;
use jwks::{JwksStore, RefreshTask};
use jwks_fetch::JwksFetcher;
use jwt::CompactJws;
use key::ClerkKey;
pub use key::KeyError;
use source::TokenSource;

/// What a request's Clerk token says. The identity is shared with the cache
/// (an `Arc`), so a cache hit allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClerkOutcome {
    SignedIn(Arc<ClerkIdentity>),
    SignedOut(SignedOutReason),
    /// No `Authorization` token and no Clerk session cookie.
    NoToken,
}

/// Whether `pem` is a usable Clerk signing key (for the configuration check).
pub fn check_pem_key(pem: &str) -> Result<(), KeyError> {
    ClerkKey::from_pem(pem).map(drop)
}

/// Why a [`ClerkVerifier`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClerkSetupError {
    #[error("the Clerk PEM key {0}")]
    BadPem(KeyError),
    #[error("cannot build the HTTP client for the Clerk JWKS")]
    HttpClient(#[source] reqwest::Error),
}

/// Counters for metrics and tests; cheap to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClerkStats {
    /// RSA signature checks performed (cache misses that reached a key).
    pub signature_checks: u64,
    /// Requests answered from the verified-token cache.
    pub cache_hits: u64,
    /// JWKS downloads attempted (start, refresh, unknown `kid`), and failed.
    pub jwks_fetches: u64,
    pub jwks_failures: u64,
    /// Keys currently held (1 for a PEM key).
    pub keys: usize,
}

enum KeySource {
    /// Networkless: one key, `kid` not compared (as Clerk's SDK does).
    Pem(Arc<ClerkKey>),
    Jwks {
        store: Arc<JwksStore>,
        _refresh: RefreshTask,
    },
}

/// Verifies Clerk session tokens for one configured instance.
pub struct ClerkVerifier {
    keys: KeySource,
    policy: Policy,
    skew_secs: u64,
    cookies: ClerkCookieNames,
    cache: VerifiedCache,
    signature_checks: AtomicU64,
    cache_hits: AtomicU64,
}

impl std::fmt::Debug for ClerkVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = match &self.keys {
            KeySource::Pem(_) => "pem",
            KeySource::Jwks { .. } => "jwks",
        };
        f.debug_struct("ClerkVerifier")
            .field("keys", &keys)
            .field("issuers", &self.policy.issuers)
            .field("authorized_parties", &self.policy.authorized_parties)
            .field("skew_secs", &self.skew_secs)
            .field("stats", &self.stats())
            .finish()
    }
}

impl ClerkVerifier {
    /// Builds the verifier; with a JWKS URL, fetches the keys once and starts
    /// the background refresh (so this must run inside a Tokio runtime). A
    /// failed first fetch is logged, not fatal (see `jwks.rs`).
    pub async fn new(cfg: &ClerkConfig) -> Result<Self, ClerkSetupError> {
        let keys = match &cfg.keys {
            ClerkKeys::Pem(pem) => KeySource::Pem(Arc::new(
                ClerkKey::from_pem(pem).map_err(ClerkSetupError::BadPem)?,
            )),
            ClerkKeys::Jwks {
                url,
                secret_key,
                refresh,
                min_refetch,
            } => {
                let fetcher = JwksFetcher::new(url.clone(), secret_key.clone())
                    .map_err(ClerkSetupError::HttpClient)?;
                let (store, refresh) = JwksStore::start(fetcher, *refresh, *min_refetch).await;
                KeySource::Jwks {
                    store,
                    _refresh: refresh,
                }
            }
        };
        Ok(ClerkVerifier {
            keys,
            policy: Policy {
                issuers: cfg.issuers.clone(),
                authorized_parties: cfg.authorized_parties.clone(),
            },
            skew_secs: cfg.clock_skew.as_secs(),
            cookies: ClerkCookieNames::new(cfg.publishable_key.as_deref()),
            cache: VerifiedCache::new(cache::MAX_CACHED_TOKENS),
            signature_checks: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        })
    }

    /// Who the request's Clerk token says is signed in, at `now` (Unix seconds).
    pub async fn identify(&self, headers: &http::HeaderMap, now: u64) -> ClerkOutcome {
        let outcome = self.identify_uncounted(headers, now).await;
        match &outcome {
            ClerkOutcome::SignedIn(_) => crate::metrics::record_identify("clerk", "signed_in"),
            ClerkOutcome::SignedOut(reason) => {
                crate::metrics::record_identify("clerk", reason.as_str())
            }
            ClerkOutcome::NoToken => {}
        }
        outcome
    }

    async fn identify_uncounted(&self, headers: &http::HeaderMap, now: u64) -> ClerkOutcome {
        let (token, client_uat) = match source::token_source(headers, &self.cookies, now) {
            TokenSource::None => return ClerkOutcome::NoToken,
            TokenSource::Header(token) => (token, None),
            TokenSource::Cookie {
                client_uat: None, ..
            } => {
                return ClerkOutcome::SignedOut(SignedOutReason::ClientUatMissing);
            }
            TokenSource::Cookie {
                client_uat: Some(0),
                ..
            } => {
                return ClerkOutcome::SignedOut(SignedOutReason::ClientUatZero);
            }
            TokenSource::Cookie { token, client_uat } => (token, client_uat),
        };
        let digest = cache::digest(token);
        let verified = match self.cache.get(&digest) {
            Some(verified) => {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                verified
            }
            None => match self.verify(token).await {
                Ok(verified) => {
                    let verified = Arc::new(verified);
                    self.cache
                        .insert(digest, Arc::clone(&verified), now, self.skew_secs);
                    verified
                }
                Err(reason) => return ClerkOutcome::SignedOut(reason),
            },
        };
        match decide::decide(&verified, client_uat, now, self.skew_secs) {
            Ok(identity) => ClerkOutcome::SignedIn(identity),
            Err(reason) => ClerkOutcome::SignedOut(reason),
        }
    }

    /// The cookie names of this instance's session.
    pub fn cookie_names(&self) -> &ClerkCookieNames {
        &self.cookies
    }

    pub fn stats(&self) -> ClerkStats {
        let (jwks_fetches, jwks_failures, keys) = match &self.keys {
            KeySource::Pem(_) => (0, 0, 1),
            KeySource::Jwks { store, .. } => (store.fetches(), store.failures(), store.key_count()),
        };
        ClerkStats {
            signature_checks: self.signature_checks.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            jwks_fetches,
            jwks_failures,
            keys,
        }
    }

    /// Header, key, signature, clock-free claims. `Err` = not cacheable.
    async fn verify(&self, token: &str) -> Result<Verified, SignedOutReason> {
        let jws = CompactJws::parse(token)?;
        let key = self.key_for(jws.kid.as_deref()).await?;
        self.signature_checks.fetch_add(1, Ordering::Relaxed);
        jws.verify_signature(&key)?;
        let claims: RawClaims = jws.claims()?;
        let times = claims.times()?;
        let verdict = claims.into_identity(&self.policy).map(Arc::new);
        Ok(Verified { times, verdict })
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<Arc<ClerkKey>, SignedOutReason> {
        match &self.keys {
            KeySource::Pem(key) => Ok(Arc::clone(key)),
            KeySource::Jwks { store, .. } => {
                let kid = kid.ok_or(SignedOutReason::MissingKeyId)?;
                match store.lookup(kid) {
                    Some(key) => Ok(key),
                    None => store
                        .refetch_for(kid)
                        .await
                        .ok_or(SignedOutReason::UnknownKeyId),
                }
            }
        }
    }
}
