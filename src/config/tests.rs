use std::collections::HashMap;
use std::path::Path;

use super::*;

struct FakeEnv(HashMap<&'static str, &'static str>);

impl Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
}

fn env() -> FakeEnv {
    FakeEnv(HashMap::from([
        ("KERNIA_SECRET", "a-kernia-secret-of-some-length"),
        ("KERNIA_DATABASE_URL", "postgres://app:pw@db:5432/app"),
        ("CUTOVER_REDIS_URL", "redis://127.0.0.1:6379/0"),
        (
            "CUTOVER_ASSERTION_SECRET",
            "an-assertion-secret-of-32-or-more-chars",
        ),
        ("CUTOVER_SMTP_URL", "smtp://127.0.0.1:2525"),
        (
            "CLERK_WEBHOOK_SIGNING_SECRET",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        ),
        ("CLERK_SECRET_KEY", "sk_live_example"),
    ]))
}

const MINIMAL: &str = r#"
[server]
plain_listen = "127.0.0.1:8080"
[upstreams]
legacy = "http://127.0.0.1:3000"
kernia = "http://127.0.0.1:3001"
[kernia]
secret = "0123456789abcdef0123"
database_url = "sqlite://kernia.db"
"#;

fn problems(text: &str) -> Vec<Problem> {
    match Config::parse(text, Path::new("test.toml"), &env()) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected problems, got {other}"),
        Ok(_) => panic!("expected problems, got a valid config"),
    }
}

fn keys(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn example_file_documents_a_valid_configuration() {
    let text = include_str!("../../config/cutover.example.toml");
    let cfg = Config::parse(text, Path::new("cutover.example.toml"), &env())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.kernia.base_path, "/api/auth");
    assert_eq!(cfg.kernia.secret.expose(), "a-kernia-secret-of-some-length");
    assert!(cfg.reset.as_ref().is_some_and(|r| r.smtp.is_some()));
    assert!(cfg.assertion.is_some());
    assert!(cfg.routing.denied.contains("/api/auth/admin/create-user"));
    let clerk = cfg.clerk.expect("[clerk] is configured");
    assert_eq!(clerk.issuers, vec!["https://clerk.example.com".to_string()]);
    assert_eq!(
        cfg.import.roles,
        vec![("org:billing".to_string(), "billing".to_string())]
    );
    let sync = cfg.clerk_sync.expect("[clerk_sync] is configured");
    assert_eq!(sync.webhook_path, DEFAULT_WEBHOOK_PATH);
    assert!(sync.webhook_secret.is_some());
    let live = sync.live.expect("live verification is on");
    assert_eq!(live.api_url, "https://api.clerk.com/v1");
    assert_eq!(live.secret_key.expose(), "sk_live_example");
}

#[test]
fn clerk_sync_checks_its_secrets_and_the_live_switch() {
    let bad = format!(
        "{MINIMAL}[clerk_sync]\nwebhook_secret = \"not-a-whsec\"\nlive_verify = true\nbreaker_failures = 0\n"
    );
    assert_eq!(
        keys(&problems(&bad)),
        vec![
            "clerk_sync.webhook_secret",
            "clerk_sync.breaker_failures",
            "clerk_sync.secret_key"
        ]
    );
    // The "Clerk is gone" switch wins over a configured key.
    let off = format!("{MINIMAL}[clerk_sync]\nsecret_key = \"sk_live_x\"\nlive_verify = false\n");
    let cfg = Config::parse(&off, Path::new("t.toml"), &env()).unwrap();
    assert!(cfg.clerk_sync.unwrap().live.is_none());
    // Without [clerk_sync], nothing of it runs.
    let cfg = Config::parse(MINIMAL, Path::new("t.toml"), &env()).unwrap();
    assert!(cfg.clerk_sync.is_none());
}

#[test]
fn dev_file_is_valid() {
    let text = include_str!("../../config/dev.toml");
    let cfg = Config::parse(text, Path::new("dev.toml"), &env()).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(cfg.state.backend, StateBackend::Memory));
    assert!(cfg.kernia.database_url.expose().starts_with("sqlite:"));
}

#[test]
fn minimal_file_gets_defaults() {
    let cfg = Config::parse(MINIMAL, Path::new("m.toml"), &env()).unwrap();
    assert_eq!(cfg.kernia.base_path, "/api/auth");
    assert_eq!(cfg.limits.auth_body_bytes, 16 * 1024);
    assert!(cfg.clerk.is_none());
    assert_eq!(cfg.state.key_prefix, "cutover:");
    assert_eq!(cfg.migration.lock_lease, std::time::Duration::from_secs(5));
}

#[test]
fn the_retired_lock_ttl_key_names_its_replacement() {
    let old = format!("{MINIMAL}[migration]\nlock_ttl_secs = 10\n");
    let found = problems(&old);
    assert_eq!(keys(&found), vec!["migration.lock_ttl_secs"]);
    assert!(
        found[0].message.contains("lock_lease_secs"),
        "{}",
        found[0].message
    );
    let short = format!("{MINIMAL}[migration]\nlock_lease_secs = 1\n");
    assert_eq!(keys(&problems(&short)), vec!["migration.lock_lease_secs"]);
}

#[test]
fn every_problem_is_reported_at_once_with_its_key() {
    let text = r#"
bogus_top = 1
[server]
plain_listen = "not an address"
colour = "blue"
[upstreams]
legacy = "ftp://example.com"
[kernia]
secret_env = "NOT_SET_ANYWHERE"
database_url = "mysql://x"
session_cache_ms = -3
[limits]
max_header_bytes = "big"
[log]
format = "yaml"
"#;
    let found = problems(text);
    let keys = keys(&found);
    for expected in [
        "bogus_top",
        "server.plain_listen",
        "server.colour",
        "upstreams.legacy",
        "upstreams.kernia",
        "kernia.secret_env",
        "kernia.database_url",
        "kernia.session_cache_ms",
        "limits.max_header_bytes",
        "log.format",
    ] {
        assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
    }
    let unknown = found.iter().find(|p| p.key == "server.colour").unwrap();
    assert_eq!(unknown.message, "unknown key");
}

#[test]
fn secret_inline_and_env_together_is_an_error() {
    let text = MINIMAL.replace(
        "secret = \"0123456789abcdef0123\"",
        "secret = \"0123456789abcdef0123\"\nsecret_env = \"KERNIA_SECRET\"",
    );
    assert_eq!(keys(&problems(&text)), vec!["kernia.secret"]);
}

#[test]
fn secrets_come_from_named_environment_variables() {
    let text = MINIMAL
        .replace(
            "secret = \"0123456789abcdef0123\"",
            "secret_env = \"KERNIA_SECRET\"",
        )
        .replace(
            "database_url = \"sqlite://kernia.db\"",
            "database_url_env = \"KERNIA_DATABASE_URL\"",
        );
    let cfg = Config::parse(&text, Path::new("m.toml"), &env()).unwrap();
    assert_eq!(cfg.kernia.secret.expose(), "a-kernia-secret-of-some-length");
    assert_eq!(
        cfg.kernia.database_url.expose(),
        "postgres://app:pw@db:5432/app"
    );
}

#[test]
fn debug_output_of_a_whole_config_holds_no_secret() {
    let text = format!(
        "{MINIMAL}\n[state]\nbackend = \"redis\"\nredis_url = \"redis://:redispass@127.0.0.1/0\"\n"
    );
    let cfg = Config::parse(&text, Path::new("m.toml"), &env()).unwrap();
    let printed = format!("{cfg:?}");
    assert!(!printed.contains("0123456789abcdef0123"), "{printed}");
    assert!(!printed.contains("kernia.db"), "{printed}");
    assert!(!printed.contains("redispass"), "{printed}");
}

#[test]
fn redis_backend_needs_a_url() {
    let text = format!("{MINIMAL}\n[state]\nbackend = \"redis\"\n");
    assert_eq!(keys(&problems(&text)), vec!["state.redis_url"]);
}

#[test]
fn tls_listener_needs_all_three_keys() {
    let text = MINIMAL.replace(
        "plain_listen = \"127.0.0.1:8080\"",
        "listen = \"127.0.0.1:8443\"\ntls_cert = \"a.crt\"",
    );
    assert_eq!(keys(&problems(&text)), vec!["server.tls_key"]);
}

#[test]
fn clerk_needs_exactly_one_key_source() {
    let text =
        format!("{MINIMAL}\n[clerk]\npublishable_key = \"pk_test_Y2xlcmsuZXhhbXBsZS5jb20k\"\n");
    assert_eq!(keys(&problems(&text)), vec!["clerk.jwt_key"]);
    let text =
        format!("{MINIMAL}\n[clerk]\nissuer = \"https://clerk.x\"\njwt_key = \"not a pem\"\n");
    assert_eq!(keys(&problems(&text)), vec!["clerk.jwt_key"]);
}

#[test]
fn a_clerk_pem_key_that_cannot_verify_is_refused_with_what_it_is() {
    let clerk = |pem: &str| {
        format!("{MINIMAL}\n[clerk]\nissuer = \"https://clerk.x\"\njwt_key = '''\n{pem}'''\n")
    };
    let good = include_str!("../../tests/fixtures/clerk/key_a.pub.pem");
    assert!(Config::parse(&clerk(good), Path::new("test.toml"), &env()).is_ok());
    // The private key pasted where the public one belongs.
    let private = include_str!("../../tests/fixtures/clerk/key_a.pem");
    let found = problems(&clerk(private));
    assert_eq!(keys(&found), vec!["clerk.jwt_key"]);
    assert!(
        found[0].message.contains("PRIVATE KEY"),
        "{}",
        found[0].message
    );
    // A P-256 public key: PEM, the right label, not RSA.
    let ec = rcgen::KeyPair::generate().unwrap().public_key_pem();
    let found = problems(&clerk(&ec));
    assert_eq!(keys(&found), vec!["clerk.jwt_key"]);
    assert!(
        found[0].message.contains("not an RSA public key"),
        "{}",
        found[0].message
    );
}

#[test]
fn publishable_key_names_the_frontend_api_host() {
    assert_eq!(
        frontend_api_host("pk_test_Y2xlcmsuY2xlcmsuZGV2JA").as_deref(),
        Some("clerk.clerk.dev")
    );
    assert_eq!(
        frontend_api_host("pk_live_ZmFrZS1jbGVyay10ZXN0LmNsZXJrLmFjY291bnRzLmRldiQ=").as_deref(),
        Some("fake-clerk-test.clerk.accounts.dev")
    );
    assert_eq!(frontend_api_host("sk_test_abc"), None);
    assert_eq!(frontend_api_host("pk_test_!!!"), None);
}

#[test]
fn syntax_errors_name_the_file() {
    let err = Config::parse("[server\n", Path::new("broken.toml"), &env()).unwrap_err();
    assert!(err.to_string().contains("broken.toml"), "{err}");
}

#[test]
fn routing_and_reset_sections_report_their_problems() {
    let text = format!(
        "{MINIMAL}\n[rollout]\npercentage = 120\nallow_email_domains = [\"a@b\"]\n[routes]\ndeny = [\"no-slash\"]\n[reset]\nlink = \"https://x/reset\"\n"
    );
    let found = problems(&text);
    let keys = keys(&found);
    for expected in [
        "rollout.percentage",
        "rollout.allow_email_domains[0]",
        "routes.deny[0]",
        "reset.link",
        "reset.smtp",
    ] {
        assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
    }
}

#[test]
fn default_denied_paths_follow_the_base_path_and_can_be_lifted_only_by_a_danger_switch() {
    let text = MINIMAL.replace("[kernia]\n", "[kernia]\nbase_path = \"/auth\"\n");
    let cfg = Config::parse(&text, Path::new("m.toml"), &env()).unwrap();
    assert!(
        cfg.routing
            .denied
            .contains("/auth/two-factor/view-backup-codes")
    );
    let text = format!("{text}\n[routes]\ndanger_allow_unauthenticated_kernia_routes = true\n");
    let cfg = Config::parse(&text, Path::new("m.toml"), &env()).unwrap();
    assert!(cfg.routing.denied.is_empty());
}

#[test]
fn import_section_has_defaults_and_reads_roles() {
    let cfg = Config::parse(MINIMAL, Path::new("m.toml"), &env()).unwrap();
    assert_eq!(cfg.import, ImportConfig::default());
    assert_eq!(cfg.import.batch_size, 2000);
    assert_eq!(cfg.import.writers, 3);
    assert_eq!(cfg.import.creator_role.as_deref(), Some("owner"));
    assert_eq!(cfg.import.clerk_secret_key_env, "CLERK_SECRET_KEY");
    let text = format!(
        "{MINIMAL}\n[import]\ncreator_role = \"\"\nbatch_size = 250\n[import.roles]\n\"org:billing\" = \"billing\"\n"
    );
    let cfg = Config::parse(&text, Path::new("m.toml"), &env()).unwrap();
    assert_eq!(cfg.import.creator_role, None);
    assert_eq!(cfg.import.batch_size, 250);
    assert_eq!(
        cfg.import.roles,
        vec![("org:billing".to_string(), "billing".to_string())]
    );
}

#[test]
fn import_section_problems_name_their_keys() {
    let text = format!(
        "{MINIMAL}\n[import]\nbatch_size = 0\nwriters = 0\nclerk_api_url = \"ftp://x\"\nspeed = 3\n[import.roles]\n\"org:x\" = 5\n\"org:y\" = \"two words\"\n"
    );
    let found = problems(&text);
    let keys = keys(&found);
    for expected in [
        "import.batch_size",
        "import.writers",
        "import.clerk_api_url",
        "import.speed",
        "import.roles.\"org:x\"",
        "import.roles.\"org:y\"",
    ] {
        assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
    }
}

#[test]
fn edge_deadlines_and_database_bounds_have_defaults_and_can_be_set() {
    use std::time::Duration;
    let cfg = Config::parse(MINIMAL, Path::new("m.toml"), &env()).unwrap();
    assert_eq!(cfg.limits.header_read_timeout, Duration::from_secs(10));
    assert_eq!(cfg.kernia.db.pool_size, 16);
    assert_eq!(cfg.kernia.db.lookups.timeout, Duration::from_millis(250));
    assert_eq!(cfg.kernia.db.lookups.retry_after, Duration::from_secs(1));
    let text = MINIMAL.replace(
        "[kernia]\n",
        "[limits]\nheader_read_timeout_ms = 1500\n[kernia]\ndb_pool_size = 4\ndb_lookup_timeout_ms = 100\ndb_retry_after_ms = 0\n",
    );
    let cfg = Config::parse(&text, Path::new("m.toml"), &env()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.limits.header_read_timeout, Duration::from_millis(1500));
    assert_eq!(cfg.kernia.db.pool_size, 4);
    assert_eq!(cfg.kernia.db.lookups.timeout, Duration::from_millis(100));
    assert_eq!(cfg.kernia.db.lookups.retry_after, Duration::ZERO);
    let zero_pool = MINIMAL.replace("[kernia]\n", "[kernia]\ndb_pool_size = 0\n");
    let err = Config::parse(&zero_pool, Path::new("m.toml"), &env()).unwrap_err();
    assert!(err.to_string().contains("kernia.db_pool_size"), "{err}");
}

#[test]
fn webhooks_and_outbox_problems_name_their_keys() {
    let text = format!(
        "{MINIMAL}\n[outbox]\ndelivery_timeout_secs = 30\nlease_secs = 10\nretry_schedule_secs = [0, \"5\"]\n\
         [webhooks]\n[[webhooks.endpoints]]\nurl = \"ftp://x\"\nsecret = \"not-a-whsec\"\ntypes = [\"user.exploded\"]\n\
         [[webhooks.endpoints]]\nurl = \"https://ok.example\"\nsecret_env = \"UNSET_VAR\"\n"
    );
    let p = problems(&text);
    let k = keys(&p);
    for expected in [
        "outbox.lease_secs",
        "outbox.retry_schedule_secs[1]",
        "webhooks.instance_id",
        "webhooks.endpoints[0].url",
        "webhooks.endpoints[0].secret",
        "webhooks.endpoints[0].types[0]",
        "webhooks.endpoints[1].secret_env",
    ] {
        assert!(k.contains(&expected), "{expected} missing from {p:#?}");
    }
}

#[test]
fn a_webhooks_section_needs_an_endpoint_and_outbox_defaults_are_svix() {
    let p = problems(&format!("{MINIMAL}\n[webhooks]\ninstance_id = \"ins_1\"\n"));
    assert_eq!(keys(&p), vec!["webhooks.endpoints"]);
    let cfg = Config::parse(MINIMAL, Path::new("t.toml"), &env()).unwrap();
    let secs: Vec<u64> = cfg
        .outbox
        .retry_schedule
        .iter()
        .map(|d| d.as_secs())
        .collect();
    assert_eq!(secs, SVIX_SCHEDULE_SECS.to_vec());
    assert_eq!(cfg.outbox.delivery_timeout.as_secs(), 15);
    assert!(cfg.webhooks.is_none());
}
