//! The real `cutover serve` process: JSON access logs that never carry a
//! secret, and SIGTERM draining in-flight requests.

use std::time::{Duration, Instant};

use crate::harness::Engine;
use crate::harness::echo::Echo;
use crate::harness::kernia::{KerniaServer, client, sign_up};
use crate::harness::process::Process;
use crate::harness::server::toml;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_is_one_json_line_per_request_and_never_carries_a_secret() {
    let kernia = KerniaServer::start(Engine::Sqlite).await;
    let legacy = Echo::start("legacy").await;
    let config = toml(&legacy.url(), &kernia.base_url, &kernia.db.url, "")
        .replace("level = \"warn\"", "level = \"info\"\nformat = \"json\"");
    let p = Process::start(&config);

    let (_, cookie) = sign_up(&p.url, "log@example.com", "password-never-logged-1", "Log").await;
    let token = cookie
        .trim_start_matches("better-auth.session_token=")
        .to_string();
    let resp = client()
        .get(format!("{}/whoami?token=query-secret-xyz", p.url))
        .header("cookie", &cookie)
        .header("authorization", "Bearer header-secret-abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _ = client()
        .post(format!("{}/api/auth/admin/create-user", p.url))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let lines = p.lines();
    let access: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "cutover::access" && v["message"] == "request")
        .collect();
    assert_eq!(access.len(), 3, "one line per request: {lines:#?}");
    let whoami = access.iter().find(|v| v["path"] == "/whoami").unwrap();
    assert_eq!(whoami["status"], 200);
    assert_eq!(whoami["provider"], "kernia");
    assert_eq!(whoami["upstream"], "kernia");
    assert_eq!(whoami["route"], "kernia");
    assert_eq!(whoami["reason"], "kernia_session");
    assert!(whoami["duration_ms"].as_f64().is_some());
    let denied = access
        .iter()
        .find(|v| v["path"] == "/api/auth/admin/create-user")
        .unwrap();
    assert_eq!(denied["status"], 404);
    assert_eq!(denied["reason"], "denied_path");
    let all = lines.join("\n");
    for secret in [
        token.as_str(),
        token.split('.').next().unwrap(),
        "password-never-logged-1",
        "query-secret-xyz",
        "header-secret-abc",
        crate::harness::kernia::SECRET,
    ] {
        assert!(!all.contains(secret), "the log holds a secret ({secret})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let kernia = KerniaServer::start(Engine::Sqlite).await;
    let legacy = Echo::start("legacy").await;
    let p = Process::start(&toml(&legacy.url(), &legacy.url(), &kernia.db.url, ""));
    let url = format!("{}/slow?ms=1500", p.url);
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.sigterm();
    let resp = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(resp.status(), 200);
    let mut p = p;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            assert!(status.success(), "cutover exited with {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cutover did not exit after draining"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
