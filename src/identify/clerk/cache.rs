//! The verified-token cache: an RSA verification is paid once per token.
//!
//! - **Key**: SHA-256 of the full token value, so no raw token sits in memory
//!   as a map key and two tokens can only share an entry by colliding SHA-256.
//!   Each [`super::ClerkVerifier`] has its own cache: nothing is shared across
//!   instances or configurations.
//! - **Value**: what verification concluded ([`Verified`]): the identity, or
//!   a refusal that cannot change for this token (wrong `iss`, `sts: pending`…).
//!   Only tokens whose *signature verified* are stored, so forged tokens can
//!   neither fill the cache nor poison it; refusals that can change (unknown
//!   `kid` before a refetch) are never stored.
//! - **Lifetime**: per entry, until the token's `exp` plus the skew (capped at
//!   an hour), measured from insertion on moka's clock. The time and
//!   `__client_uat` checks are not cached: `decide` runs them on every hit
//!   against the request's own clock and cookies, so a cached token still
//!   expires exactly on time, and becomes valid exactly at its `nbf`.
//! - **Size**: bounded ([`MAX_CACHED_TOKENS`]); moka evicts the least useful.
//!
//! A token seen for the first time by several requests at once may be verified
//! more than once; that costs a few RSA checks and nothing else.
//!
//! Keys that leave the JWKS do not evict entries: a token already verified
//! stays accepted until its `exp` (Clerk's tokens live about 60 s), which is
//! the same window Clerk's own revocation leaves (§1.10).

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use sha2::{Digest as _, Sha256};

use super::decide::Verified;

/// Upper bound on cached tokens (≈ one per active browser per minute).
pub(crate) const MAX_CACHED_TOKENS: u64 = 100_000;

/// Longest an entry lives, whatever its `exp` says.
const MAX_ENTRY_LIFETIME: Duration = Duration::from_secs(3600);

pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

struct Entry {
    verified: Arc<Verified>,
    lifetime: Duration,
}

struct UntilTokenExpiry;

impl Expiry<TokenDigest, Arc<Entry>> for UntilTokenExpiry {
    fn expire_after_create(
        &self,
        _key: &TokenDigest,
        entry: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(entry.lifetime)
    }
}

pub(crate) struct VerifiedCache {
    entries: Cache<TokenDigest, Arc<Entry>>,
}

impl VerifiedCache {
    pub fn new(max_tokens: u64) -> Self {
        VerifiedCache {
            entries: Cache::builder()
                .max_capacity(max_tokens)
                .expire_after(UntilTokenExpiry)
                .build(),
        }
    }

    pub fn get(&self, key: &TokenDigest) -> Option<Arc<Verified>> {
        self.entries.get(key).map(|e| Arc::clone(&e.verified))
    }

    /// Stores a verification result until the token's `exp` + `skew_secs`;
    /// a token already past that is not stored.
    pub fn insert(&self, key: TokenDigest, verified: Arc<Verified>, now: u64, skew_secs: u64) {
        let until = verified
            .times
            .exp
            .saturating_add(i64::try_from(skew_secs).unwrap_or(0));
        let left = until.saturating_sub(i64::try_from(now).unwrap_or(i64::MAX));
        let Ok(left) = u64::try_from(left) else {
            return;
        };
        if left == 0 {
            return;
        }
        let lifetime = Duration::from_secs(left).min(MAX_ENTRY_LIFETIME);
        self.entries
            .insert(key, Arc::new(Entry { verified, lifetime }));
    }

    #[cfg(test)]
    fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::super::claims::TokenTimes;
    use super::super::reason::SignedOutReason;
    use super::*;

    fn verified(exp: i64) -> Arc<Verified> {
        Arc::new(Verified {
            times: TokenTimes {
                exp,
                iat: exp - 60,
                nbf: None,
            },
            verdict: Err(SignedOutReason::PendingSession),
        })
    }

    #[test]
    fn entries_are_found_by_the_tokens_digest() {
        let cache = VerifiedCache::new(10);
        cache.insert(digest("a.b.c"), verified(1_000), 950, 5);
        assert!(cache.get(&digest("a.b.c")).is_some());
        assert!(cache.get(&digest("a.b.d")).is_none());
    }

    #[test]
    fn expired_tokens_are_not_stored() {
        let cache = VerifiedCache::new(10);
        cache.insert(digest("old"), verified(1_000), 1_005, 5);
        cache.insert(digest("older"), verified(1_000), 2_000, 5);
        assert_eq!(cache.len(), 0);
        cache.insert(digest("edge"), verified(1_000), 1_004, 5);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = VerifiedCache::new(50);
        for i in 0..500 {
            cache.insert(digest(&format!("t{i}")), verified(10_000), 1_000, 5);
        }
        assert!(cache.len() <= 50, "{}", cache.len());
    }
}
