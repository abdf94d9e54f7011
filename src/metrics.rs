//! Prometheus metrics: one registry per process, simple functions to record.
//!
//! Built on the `prometheus` crate (TiKV's): typed counters, gauges and
//! histograms whose label *names* are fixed when they are registered, and the
//! text exposition format served at the admin listener's `/metrics`. It was
//! chosen over `metrics` + `metrics-exporter-prometheus` because cutover only
//! needs the text format on its own listener: no global recorder to install
//! (which in-process test servers would fight over), no exporter HTTP server,
//! fewer dependencies.
//!
//! Label *values* are bounded: upstream names, HTTP status codes, fixed
//! outcome words, hasher names from the closed list cutover knows, ledger
//! states. Never a user id, a path or anything a client chooses freely.
//!
//! Call sites use the functions below; none of them can fail or panic.

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use prometheus::{
    Encoder as _, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    identify: IntCounterVec,
    migrations: IntCounterVec,
    hash_queue_depth: IntGauge,
    hash_wait: Histogram,
    ledger_users: IntGaugeVec,
    rollout_percentage: Gauge,
    rollout_version: IntGauge,
    kill_switch: IntGauge,
    jwks_refresh: IntCounterVec,
    reset_deliveries: IntCounterVec,
    webhook_deliveries: IntCounterVec,
    config_reloads: IntCounterVec,
    rollout_changes: IntCounterVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static METRICS: LazyLock<Metrics> = LazyLock::new(build);

// Registration only fails for a malformed or duplicate name; the names below
// are constants registered once, so a failure is a programming error caught by
// the unit test that scrapes every metric.
fn build() -> Metrics {
    let registry = Registry::new();
    macro_rules! reg {
        ($m:expr) => {{
            let m = $m.expect("a valid metric definition");
            registry
                .register(Box::new(m.clone()))
                .expect("a metric name registered once");
            m
        }};
    }
    Metrics {
        requests: reg!(IntCounterVec::new(
            Opts::new(
                "cutover_requests_total",
                "Requests answered, by upstream and status code"
            ),
            &["upstream", "status"]
        )),
        request_duration: reg!(HistogramVec::new(
            HistogramOpts::new(
                "cutover_request_duration_seconds",
                "Time to the response head, by upstream"
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["upstream"]
        )),
        identify: reg!(IntCounterVec::new(
            Opts::new(
                "cutover_identify_total",
                "Identify outcomes by provider (Clerk refusal reasons as outcomes)"
            ),
            &["provider", "outcome"]
        )),
        migrations: reg!(IntCounterVec::new(
            Opts::new(
                "cutover_migrations_total",
                "Password migrations at sign-in, by hasher and outcome"
            ),
            &["hasher", "outcome"]
        )),
        hash_queue_depth: reg!(IntGauge::new(
            "cutover_hash_queue_depth",
            "Hashing jobs waiting for a thread"
        )),
        hash_wait: reg!(Histogram::with_opts(
            HistogramOpts::new(
                "cutover_hash_wait_seconds",
                "Time a hashing job waited for a thread"
            )
            .buckets(LATENCY_BUCKETS.to_vec())
        )),
        ledger_users: reg!(IntGaugeVec::new(
            Opts::new("cutover_ledger_users", "Ledger rows by migration state"),
            &["state"]
        )),
        rollout_percentage: reg!(Gauge::new(
            "cutover_rollout_percentage",
            "The rollout percentage this copy routes by"
        )),
        rollout_version: reg!(IntGauge::new(
            "cutover_rollout_version",
            "The version of the rollout this copy routes by"
        )),
        kill_switch: reg!(IntGauge::new(
            "cutover_kill_switch",
            "1 while the kill switch is on"
        )),
        jwks_refresh: reg!(IntCounterVec::new(
            Opts::new(
                "cutover_jwks_refresh_total",
                "Clerk JWKS fetches by outcome"
            ),
            &["outcome"]
        )),
        reset_deliveries: reg!(IntCounterVec::new(
            Opts::new(
                "cutover_reset_deliveries_total",
                "Password reset links sent, by channel and outcome"
            ),
            &["channel", "outcome"]
        )),
        webhook_deliveries: reg!(IntCounterVec::new(
            Opts::new(
                "cutover_webhook_deliveries_total",
                "Attempts to deliver Clerk-shaped webhook events, by outcome"
            ),
            &["outcome"]
        )),
        config_reloads: reg!(IntCounterVec::new(
            Opts::new(
                "cutover_config_reloads_total",
                "Configuration reloads by outcome"
            ),
            &["outcome"]
        )),
        rollout_changes: reg!(IntCounterVec::new(
            Opts::new(
                "cutover_rollout_changes_total",
                "Rollout changes made through this copy, by interface"
            ),
            &["interface"]
        )),
        registry,
    }
}

/// Keep a free-form word out of label values: anything not in `allowed`
/// becomes `other`.
fn bounded<'a>(value: &'a str, allowed: &[&str]) -> &'a str {
    if allowed.contains(&value) {
        value
    } else {
        "other"
    }
}

const UPSTREAMS: &[&str] = &["legacy", "kernia", "none"];

/// The request path's children, resolved once and then only incremented: no
/// label hashing, lock or allocation per request. Index: the upstream's place
/// in [`UPSTREAMS`] (then `other`), and the status (100–599; 0 for anything else).
struct RequestChildren {
    counters: Vec<OnceLock<IntCounter>>,
    durations: Vec<OnceLock<Histogram>>,
}

const STATUS_SLOTS: usize = 501; // 0 = out of range, 1..=500 = 100..=599
const UPSTREAM_SLOTS: usize = 4; // legacy, kernia, none, other

static REQUEST_CHILDREN: LazyLock<RequestChildren> = LazyLock::new(|| RequestChildren {
    counters: (0..UPSTREAM_SLOTS * STATUS_SLOTS)
        .map(|_| OnceLock::new())
        .collect(),
    durations: (0..UPSTREAM_SLOTS).map(|_| OnceLock::new()).collect(),
});

fn upstream_slot(upstream: &str) -> (usize, &'static str) {
    match UPSTREAMS.iter().position(|u| *u == upstream) {
        Some(i) => (i, UPSTREAMS[i]),
        None => (UPSTREAMS.len(), "other"),
    }
}

/// One answered request. `upstream`: `legacy`, `kernia` or `none` (cutover
/// answered by itself). To be called from the request path's observe phase.
pub fn record_request(upstream: &str, status: u16, elapsed: Duration) {
    let m = &*METRICS;
    let children = &*REQUEST_CHILDREN;
    let (u, upstream) = upstream_slot(upstream);
    let status = if (100..=599).contains(&status) {
        status
    } else {
        0
    };
    let slot = if status == 0 {
        0
    } else {
        usize::from(status) - 99
    };
    children.counters[u * STATUS_SLOTS + slot]
        .get_or_init(|| {
            m.requests
                .with_label_values(&[upstream, status.to_string().as_str()])
        })
        .inc();
    children.durations[u]
        .get_or_init(|| m.request_duration.with_label_values(&[upstream]))
        .observe(elapsed.as_secs_f64());
}

/// The observer that feeds [`record_request`] from the request path's
/// observe phase (registered by `App`).
pub struct RequestMetrics;

impl crate::proxy::observe::Observer for RequestMetrics {
    fn observe(&self, r: &crate::proxy::observe::Record<'_>) {
        let upstream = r.ctx.upstream.map_or("none", |u| u.as_str());
        record_request(upstream, r.status.as_u16(), r.duration);
    }
}

/// One identify outcome: provider `kernia` | `clerk`; outcome `signed_in`,
/// `unverified`, `no_session`, `bad_signature`, or a Clerk refusal reason.
pub fn record_identify(provider: &str, outcome: &'static str) {
    // The common outcome, per provider, resolved once.
    static SIGNED_IN: [OnceLock<IntCounter>; 2] = [OnceLock::new(), OnceLock::new()];
    let provider = bounded(provider, &["kernia", "clerk"]);
    let fast = match (provider, outcome) {
        ("kernia", "signed_in") => Some(&SIGNED_IN[0]),
        ("clerk", "signed_in") => Some(&SIGNED_IN[1]),
        _ => None,
    };
    match fast {
        Some(cell) => cell
            .get_or_init(|| METRICS.identify.with_label_values(&[provider, outcome]))
            .inc(),
        None => METRICS
            .identify
            .with_label_values(&[provider, outcome])
            .inc(),
    }
}

/// One sign-in that reached the legacy verify: outcome `migrated`,
/// `mismatch`, `unverifiable`, `hash_failed`, `saturated`, `db_unavailable`.
pub fn record_migration(hasher: &str, outcome: &'static str) {
    let hasher = hasher
        .parse::<crate::hash::Hasher>()
        .map_or("other", |h| h.as_str());
    METRICS
        .migrations
        .with_label_values(&[hasher, outcome])
        .inc();
    if let Some(i) = FAILURE_OUTCOMES.iter().position(|o| *o == outcome) {
        MIGRATION_FAILURES[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

pub fn set_hash_queue_depth(n: usize) {
    METRICS.hash_queue_depth.set(n as i64);
}

pub fn record_hash_wait(waited: Duration) {
    METRICS.hash_wait.observe(waited.as_secs_f64());
}

pub fn set_ledger_users(state: &'static str, n: i64) {
    METRICS.ledger_users.with_label_values(&[state]).set(n);
}

pub fn rollout_applied(version: i64, percentage: f64, kill_switch: bool) {
    let m = &*METRICS;
    m.rollout_version.set(version);
    m.rollout_percentage.set(percentage);
    m.kill_switch.set(i64::from(kill_switch));
}

pub fn record_rollout_change(interface: &'static str) {
    METRICS
        .rollout_changes
        .with_label_values(&[interface])
        .inc();
}

/// `outcome`: `ok` or `error`.
pub fn record_jwks_refresh(outcome: &'static str) {
    METRICS.jwks_refresh.with_label_values(&[outcome]).inc();
}

/// `channel`: `email` | `webhook`; `outcome`: `sent` | `failed` (one failed
/// attempt; the outbox retries it).
pub fn record_reset_delivery(channel: &'static str, outcome: &'static str) {
    METRICS
        .reset_deliveries
        .with_label_values(&[channel, outcome])
        .inc();
}

/// `outcome`: `delivered` | `retry` | `failed` (given up for good).
pub fn record_webhook_delivery(outcome: &'static str) {
    METRICS
        .webhook_deliveries
        .with_label_values(&[outcome])
        .inc();
}

/// `outcome`: `ok` or `error`.
pub fn record_config_reload(outcome: &'static str) {
    METRICS.config_reloads.with_label_values(&[outcome]).inc();
}

/// Every metric, in the Prometheus text format (version 0.0.4).
pub fn render() -> String {
    let m = &*METRICS;
    // Families with labels appear only once a series exists: make the
    // promised ones visible from the first scrape.
    for upstream in ["legacy", "kernia"] {
        m.request_duration.with_label_values(&[upstream]);
    }
    for outcome in ["ok", "error"] {
        m.jwks_refresh.with_label_values(&[outcome]);
        m.config_reloads.with_label_values(&[outcome]);
    }
    for channel in ["email", "webhook"] {
        for outcome in ["sent", "failed"] {
            m.reset_deliveries.with_label_values(&[channel, outcome]);
        }
    }
    for outcome in ["delivered", "retry", "failed"] {
        m.webhook_deliveries.with_label_values(&[outcome]);
    }
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Migration outcomes other than success, summed over hashers (for the
/// dashboard; the labelled counter is the one to alert on).
const FAILURE_OUTCOMES: [&str; 5] = [
    "mismatch",
    "unverifiable",
    "hash_failed",
    "saturated",
    "db_unavailable",
];
static MIGRATION_FAILURES: [std::sync::atomic::AtomicU64; 5] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 5];

/// Counters worth showing on the dashboard, as `(what, value)`: reset
/// deliveries, failed migrations by outcome, JWKS fetch errors, since this
/// copy started.
pub fn dashboard_counters() -> Vec<(String, u64)> {
    use std::sync::atomic::Ordering;
    let m = &*METRICS;
    let mut out = Vec::new();
    for channel in ["email", "webhook"] {
        for outcome in ["sent", "failed"] {
            let n = m
                .reset_deliveries
                .get_metric_with_label_values(&[channel, outcome])
                .map_or(0, |c| c.get());
            out.push((format!("reset links {outcome} by {channel}"), n));
        }
    }
    for (i, outcome) in FAILURE_OUTCOMES.iter().enumerate() {
        out.push((
            format!("sign-in migrations: {outcome}"),
            MIGRATION_FAILURES[i].load(Ordering::Relaxed),
        ));
    }
    let jwks_errors = m
        .jwks_refresh
        .get_metric_with_label_values(&["error"])
        .map_or(0, |c| c.get());
    out.push(("Clerk JWKS fetch errors".into(), jwks_errors));
    out
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_promised_family_is_exposed_and_labels_stay_bounded() {
        record_request("legacy", 200, Duration::from_millis(3));
        record_request("/etc/passwd", 999, Duration::from_millis(3));
        record_identify("clerk", "expired");
        record_migration("bcrypt", "migrated");
        record_migration("user-chosen-junk", "migrated");
        set_hash_queue_depth(2);
        record_hash_wait(Duration::from_millis(1));
        set_ledger_users("migrated", 3);
        rollout_applied(4, 12.5, false);
        record_reset_delivery("email", "sent");
        let text = render();
        for family in [
            "cutover_requests_total",
            "cutover_request_duration_seconds",
            "cutover_identify_total",
            "cutover_migrations_total",
            "cutover_hash_queue_depth",
            "cutover_hash_wait_seconds",
            "cutover_ledger_users",
            "cutover_rollout_percentage",
            "cutover_kill_switch",
            "cutover_jwks_refresh_total",
            "cutover_reset_deliveries_total",
            "cutover_config_reloads_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family} missing"
            );
        }
        assert!(text.contains(r#"cutover_requests_total{status="0",upstream="other"}"#));
        assert!(text.contains(r#"cutover_migrations_total{hasher="other",outcome="migrated"}"#));
        assert!(!text.contains("passwd"));
        assert!(!text.contains("junk"));
    }
}
