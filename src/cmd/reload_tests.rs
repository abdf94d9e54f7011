//! Reloads against a real [`App`] (SQLite, in-process state, upstreams that
//! are never dialled): which keys are live, what swaps, what a refused
//! reload leaves.

use super::*;
use crate::proxy::forward::Upstream;

#[test]
fn flatten_names_every_leaf_by_its_dotted_key() {
    let t: toml::Table = "a = 1\n[server]\nlisten = \"x\"\n[x.y]\nz = [1, 2]\n"
        .parse()
        .unwrap();
    let keys: Vec<_> = flatten(&t).into_keys().collect();
    assert_eq!(keys, ["a", "server.listen", "x.y.z"]);
}

#[test]
fn limits_upstreams_clerk_log_level_and_the_certificate_are_live_and_nothing_else() {
    for key in [
        "limits.max_body_bytes",
        "limits.max_connections",
        "limits.idle_timeout_secs",
        "upstreams.legacy",
        "upstreams.response_timeout_ms",
        "clerk.jwt_key_file",
        "clerk.issuer",
        "clerk.authorized_parties",
        "log.level",
    ] {
        assert!(applies_live(key, false), "{key}");
    }
    for key in ["server.tls_cert", "server.tls_key"] {
        assert!(applies_live(key, true), "{key} with TLS");
        assert!(!applies_live(key, false), "{key} without TLS");
    }
    for key in [
        "server.listen",
        "server.plain_listen",
        "server.shutdown_grace_secs",
        "kernia.database_url",
        "kernia.secret",
        "state.redis_url",
        "admin.listen",
        "log.format",
        "clerk_sync.webhook_secret",
        "limits_extra.x",
        "upstreamsx",
    ] {
        assert!(!applies_live(key, true), "{key}");
    }
}

const KEY_A: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/clerk/key_a.pub.pem"
);
const KEY_B: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/clerk/key_b.pub.pem"
);

/// A configuration: `server` and `extra` are inserted in their sections.
fn config(dir: &Path, server: &str, legacy: &str, extra: &str) -> String {
    format!(
        "[server]\nplain_listen = \"127.0.0.1:0\"\n{server}\n\
         [upstreams]\nlegacy = \"{legacy}\"\nkernia = \"http://127.0.0.1:1\"\n\
         [kernia]\nsecret = \"reload-test-secret-0123456789abcdef\"\n\
         database_url = \"sqlite:{}\"\n{extra}\n",
        dir.join("k.db").display()
    )
}

struct Rig {
    path: PathBuf,
    app: Arc<App>,
    reloader: Reloader,
}

async fn rig(dir: &Path, text: &str, tls: Option<SharedTls>) -> Rig {
    let path = dir.join("cutover.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = Config::parse(text, &path, &ProcessEnv).unwrap();
    let db = crate::db::Db::connect(cfg.kernia.database_url.expose(), 2)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let state = crate::state::SharedState::connect(&cfg.state)
        .await
        .unwrap();
    let app = App::new(&cfg, db, state).await.unwrap();
    let reloader = Reloader::new(&path, &cfg, &app, tls);
    Rig {
        path,
        app,
        reloader,
    }
}

impl Rig {
    async fn reload(&mut self, text: &str) -> anyhow::Result<Outcome> {
        std::fs::write(&self.path, text).unwrap();
        self.reloader.reload().await
    }

    fn legacy(&self) -> String {
        self.app
            .upstreams()
            .host(Upstream::Legacy)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    }
}

#[tokio::test]
async fn limits_and_upstreams_swap_and_an_unchanged_part_stays_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = |legacy: &str, limits: &str| config(d, "", legacy, &format!("[limits]\n{limits}"));
    let mut r = rig(
        d,
        &text("http://127.0.0.1:1", "max_body_bytes = 1000"),
        None,
    )
    .await;
    let upstreams = r.app.upstreams();

    // The same file: nothing swaps, the pooled client stays.
    let outcome = r
        .reload(&text("http://127.0.0.1:1", "max_body_bytes = 1000"))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::default());
    assert!(Arc::ptr_eq(&r.app.upstreams(), &upstreams));

    // New limits and a new legacy URL: both swap, neither needs a restart.
    let outcome = r
        .reload(&text(
            "http://127.0.0.1:2",
            "max_body_bytes = 10\nmax_connections = 3",
        ))
        .await
        .unwrap();
    assert_eq!(outcome.swapped, ["limits", "upstreams"]);
    assert!(outcome.not_live.is_empty(), "{:?}", outcome.not_live);
    assert_eq!(r.app.limits().max_body_bytes, 10);
    assert_eq!(r.app.limits().max_connections, 3);
    assert_eq!(r.legacy(), "127.0.0.1:2");
    assert!(!Arc::ptr_eq(&r.app.upstreams(), &upstreams));

    // A key back to its default is a change too; a listener is not live.
    let outcome = r
        .reload(&config(
            d,
            "shutdown_grace_secs = 3",
            "http://127.0.0.1:2",
            "",
        ))
        .await
        .unwrap();
    assert_eq!(outcome.swapped, ["limits"]);
    assert_eq!(outcome.not_live, ["server.shutdown_grace_secs"]);
    assert_eq!(
        r.app.limits().max_body_bytes,
        crate::config::LimitsConfig::default().max_body_bytes
    );
}

#[tokio::test]
async fn a_refused_reload_changes_no_part() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, missing) = (d.join("clerk.pem"), d.join("gone.pem"));
    std::fs::copy(KEY_A, &key).unwrap();
    let key_file = |key: &Path| format!("jwt_key_file = \"{}\"", key.display());
    let text = |legacy: &str, max_body: u32, keys: &str| {
        config(
            d,
            "",
            legacy,
            &format!(
                "[limits]\nmax_body_bytes = {max_body}\n\
                 [clerk]\nissuer = \"https://clerk.example.test\"\n{keys}\n"
            ),
        )
    };
    let mut r = rig(d, &text("http://127.0.0.1:1", 1000, &key_file(&key)), None).await;
    let (upstreams, clerk) = (r.app.upstreams(), r.app.clerk().unwrap());

    // Lower limits and a new key file beside an upstream URL that is not one.
    let err = r
        .reload(&text("ftp://127.0.0.1:2", 10, &key_file(&missing)))
        .await
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("upstreams.legacy"), "{err}");
    assert!(err.contains("clerk.jwt_key_file"), "{err}");
    // A good URL, but the key file is gone.
    let err = r
        .reload(&text("http://127.0.0.1:2", 10, &key_file(&missing)))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("clerk.jwt_key_file"), "{err:#}");
    // A file that validates, but its JWKS gives no key: found only after the
    // limits and the upstream client were built, and still nothing swaps.
    let err = r
        .reload(&text(
            "http://127.0.0.1:2",
            10,
            "jwks_url = \"http://127.0.0.1:1/jwks\"",
        ))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("clerk.jwks_url"), "{err:#}");

    assert_eq!(r.app.limits().max_body_bytes, 1000);
    assert_eq!(r.legacy(), "127.0.0.1:1");
    assert!(Arc::ptr_eq(&r.app.upstreams(), &upstreams));
    assert!(Arc::ptr_eq(&r.app.clerk().unwrap(), &clerk));

    // Still compared with what runs: the good file applies every part.
    let outcome = r
        .reload(&text("http://127.0.0.1:2", 10, &key_file(&key)))
        .await
        .unwrap();
    assert_eq!(outcome.swapped, ["limits", "upstreams"]);
}

#[tokio::test]
async fn the_clerk_verifier_swaps_when_its_key_file_changes_and_goes_with_its_section() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("clerk.pem");
    std::fs::copy(KEY_A, &key).unwrap();
    let with_clerk = config(
        d,
        "",
        "http://127.0.0.1:1",
        &format!(
            "[clerk]\nissuer = \"https://clerk.example.test\"\njwt_key_file = \"{}\"\n",
            key.display()
        ),
    );
    let mut r = rig(d, &with_clerk, None).await;
    let first = r.app.clerk().unwrap();

    // Nothing changed: the verifier (and its cache of verified tokens) stays.
    assert_eq!(r.reload(&with_clerk).await.unwrap(), Outcome::default());
    assert!(Arc::ptr_eq(&r.app.clerk().unwrap(), &first));

    // The key file rewritten in place, the file the same: a new verifier.
    std::fs::copy(KEY_B, &key).unwrap();
    let outcome = r.reload(&with_clerk).await.unwrap();
    assert_eq!(outcome.swapped, ["clerk"]);
    let second = r.app.clerk().unwrap();
    assert!(!Arc::ptr_eq(&second, &first));

    // `[clerk]` removed: Clerk sessions off; back: on.
    let without = config(d, "", "http://127.0.0.1:1", "");
    assert_eq!(r.reload(&without).await.unwrap().swapped, ["clerk"]);
    assert!(r.app.clerk().is_none());
    assert_eq!(r.reload(&with_clerk).await.unwrap().swapped, ["clerk"]);
    assert!(r.app.clerk().is_some());
}

fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&crt, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (crt, key)
}

fn tls_config(dir: &Path, crt: &Path, key: &Path, grace: u32, level: &str) -> String {
    config(
        dir,
        &format!(
            "listen = \"127.0.0.1:1\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\nshutdown_grace_secs = {grace}",
            crt.display(),
            key.display()
        ),
        "http://127.0.0.1:1",
        &format!("[log]\nlevel = \"{level}\""),
    )
}

#[tokio::test]
async fn a_key_that_does_not_match_the_certificate_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a_crt, a_key) = pair(d, "a");
    let (_, b_key) = pair(d, "b");
    let start = crate::proxy::tls::server_config(&a_crt, &a_key).unwrap();
    let shared: SharedTls = Arc::new(arc_swap::ArcSwap::new(start.clone()));
    let mut r = rig(
        d,
        &tls_config(d, &a_crt, &a_key, 1, "info"),
        Some(shared.clone()),
    )
    .await;

    // Certificate a with key b, and a new limit: refused, nothing changes.
    let text = tls_config(d, &a_crt, &b_key, 1, "info") + "[limits]\nmax_body_bytes = 10\n";
    let err = r.reload(&text).await.unwrap_err();
    assert!(format!("{err:#}").contains("server.tls_cert"), "{err:#}");
    assert!(Arc::ptr_eq(&shared.load_full(), &start));
    assert_ne!(r.app.limits().max_body_bytes, 10);

    // A valid file: the certificate swaps; a key that needs a restart is
    // named, the live ones are not.
    let outcome = r
        .reload(&tls_config(d, &a_crt, &a_key, 5, "info"))
        .await
        .unwrap();
    assert!(outcome.certificate_reloaded);
    assert!(!Arc::ptr_eq(&shared.load_full(), &start));
    assert_eq!(outcome.not_live, ["server.shutdown_grace_secs"]);
}
