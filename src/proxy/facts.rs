//! What the ledger says about a user the proxy has identified, cached.
//!
//! Routing a Clerk-identified request needs two facts from the ledger: is the
//! user migrated already (then their next sign-in belongs to Kernia, and with
//! `reauth_migrated_clerk_sessions` their Clerk session is no longer honoured),
//! and their email (for email-domain overrides). They are read once per user
//! and kept for a short while; a migration anywhere invalidates them on every
//! copy (topic `ledger:<user id>`). If the database cannot be asked within
//! `[kernia].db_lookup_timeout_ms`, the user counts as not migrated (not
//! cached): the request still flows, to legacy. Concurrent misses for one
//! user share one query.

use std::sync::Arc;
use std::time::Duration;

use crate::db::bounded::{Bounded, LookupError, SingleFlight};
use crate::db::{Db, ledger};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub migrated: bool,
    pub email: Option<String>,
}

pub struct FactsCache {
    db: Db,
    bounded: Arc<Bounded>,
    flights: SingleFlight<String, Arc<Facts>>,
    cache: moka::sync::Cache<String, Arc<Facts>>,
}

use crate::db::ledger::TOPIC_PREFIX;
pub use crate::db::ledger::topic;

impl FactsCache {
    pub fn new(db: Db, bounded: Arc<Bounded>, ttl: Duration) -> FactsCache {
        FactsCache {
            db,
            bounded,
            flights: SingleFlight::default(),
            cache: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub async fn get(&self, user_id: &str) -> Arc<Facts> {
        if let Some(hit) = self.cache.get(user_id) {
            return hit;
        }
        let lookup = async {
            match self.bounded.run(self.lookup(user_id)).await {
                Ok(facts) => {
                    let facts = Arc::new(facts);
                    self.cache.insert(user_id.to_string(), facts.clone());
                    facts
                }
                Err(LookupError::Backoff) => Arc::new(Facts::default()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the ledger; routing as not migrated");
                    Arc::new(Facts::default())
                }
            }
        };
        // On the heap: the database lookup's future is large, and a cached
        // answer (the common case) should not carry its size.
        Box::pin(self.flights.run(user_id.to_string(), lookup)).await
    }

    async fn lookup(&self, user_id: &str) -> Result<Facts, crate::db::DbError> {
        let mut conn = self.db.acquire().await?;
        let entry = ledger::find_by_user(&mut conn.conn(), user_id).await?;
        Ok(match entry {
            Some(e) => Facts {
                migrated: e.state == ledger::LedgerState::Migrated,
                email: e.email,
            },
            None => Facts::default(),
        })
    }

    pub fn forget_topic(&self, topic: &str) {
        if let Some(user_id) = topic.strip_prefix(TOPIC_PREFIX) {
            self.cache.invalidate(user_id);
        }
    }

    pub fn forget_all(&self) {
        self.cache.invalidate_all();
    }
}
