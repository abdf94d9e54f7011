//! `cutover validate -c FILE --plan PLAN [--json]`: the pre-cutover checklist,
//! run against a running deployment (staging) through cutover's public address,
//! with throwaway accounts it creates and deletes.
//!
//! The plan (TOML) names the address, the checks to run and, for checks that
//! need something outside cutover (an OAuth provider's consent, an SMS code), how
//! a person does them:
//!
//! ```toml
//! base_url = "https://staging.example.com"   # cutover's public address
//! origin = "https://staging.example.com"     # sent as Origin (a trusted origin); default base_url
//! email_domain = "validate.example.com"      # throwaway accounts: cutover-validate-<random>@<domain>
//! checks = ["email_sign_in", "logout", "organization_switching", "role_check",
//!           "invitation_accept", "account_deletion"]
//! [manual]
//! social_sign_in = "Sign in with Google as the staging test account; expect the app's home page"
//! ```
//!
//! Each check prints pass or fail with the reason and the request that failed;
//! manual checks are listed as such, never as passed. `--json` prints one JSON
//! document. Exit 0 when every automatic check passed, 1 when one failed, 2 on a
//! usage error (unknown check, unreadable plan).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Exit, UsageError};
use crate::cli::ValidateArgs;

/// Every automatic check, in the order they run.
pub const CHECKS: &[&str] = &[
    "email_sign_in",
    "logout",
    "organization_switching",
    "role_check",
    "invitation_accept",
    "account_deletion",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plan {
    base_url: String,
    origin: Option<String>,
    #[serde(default = "default_domain")]
    email_domain: String,
    #[serde(default = "all_checks")]
    checks: Vec<String>,
    #[serde(default)]
    manual: BTreeMap<String, String>,
}

fn default_domain() -> String {
    "validate.invalid".into()
}

fn all_checks() -> Vec<String> {
    CHECKS.iter().map(|c| c.to_string()).collect()
}

/// Why a check failed: what was wrong and the request that showed it.
#[derive(Debug)]
struct Failure {
    reason: String,
    request: String,
}

type Outcome = Result<String, Failure>;

/// One browser: its own cookies, sent by hand so a test can also replay an old one.
#[derive(Clone)]
struct Browser {
    http: reqwest::Client,
    base: String,
    auth: String,
    origin: String,
    cookies: BTreeMap<String, String>,
}

struct Answer {
    status: u16,
    body: Value,
    request: String,
    retry_after: Option<u64>,
}

impl Browser {
    /// One request; a `429` is waited out (Retry-After, at most 90 s, twice), as a
    /// person would, since Kernia rate-limits sign-ups and sign-ins.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, Failure> {
        let mut tries = 0;
        loop {
            let a = self.call_once(method, path, body.clone()).await?;
            match a.retry_after {
                Some(wait) if a.status == 429 && tries < 2 && wait <= 90 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_secs(wait + 1)).await;
                }
                _ => return Ok(a),
            }
        }
    }

    async fn call_once(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, Failure> {
        let url = format!("{}{}{}", self.base, self.auth, path);
        let request = format!("{method} {}{path}", self.auth);
        let mut rb = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        };
        rb = rb.header("origin", &self.origin);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            rb = rb.header("cookie", jar.join("; "));
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.map_err(|e| Failure {
            reason: format!("no answer: {e}"),
            request: request.clone(),
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        for v in resp.headers().get_all("set-cookie") {
            let Ok(v) = v.to_str() else { continue };
            let first = v.split(';').next().unwrap_or("");
            if let Some((k, val)) = first.split_once('=') {
                let gone = v.to_ascii_lowercase().contains("max-age=0") || val.is_empty();
                if gone {
                    self.cookies.remove(k.trim());
                } else {
                    self.cookies.insert(k.trim().to_string(), val.to_string());
                }
            }
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        // Kernia says when in its message ("Retry in 50s.") rather than a header.
        let retry_after = retry_after.or_else(|| {
            let msg = body["message"].as_str()?;
            let n = msg.split("Retry in ").nth(1)?.trim_end_matches(['s', '.']);
            n.parse().ok()
        });
        Ok(Answer {
            status,
            body,
            request,
            retry_after,
        })
    }

    async fn expect(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Result<Value, Failure> {
        let a = self.call(method, path, body).await?;
        if a.status != want {
            return Err(Failure {
                reason: format!("expected {want}, got {}: {}", a.status, short(&a.body)),
                request: a.request,
            });
        }
        Ok(a.body)
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        format!("{}…", &s[..200])
    } else {
        s
    }
}

fn fail(reason: impl Into<String>, request: &str) -> Failure {
    Failure {
        reason: reason.into(),
        request: request.into(),
    }
}

/// The throwaway accounts and organizations one run creates.
struct Run {
    template: Browser,
    domain: String,
    tag: String,
    password: String,
    created: Vec<(String, Browser)>,
    orgs: Vec<(String, Browser)>,
    pair: Option<(Browser, Browser, String)>,
}

impl Run {
    fn email(&self, who: &str) -> String {
        format!("cutover-validate-{}-{who}@{}", self.tag, self.domain)
    }

    fn browser(&self) -> Browser {
        Browser {
            cookies: BTreeMap::new(),
            ..self.template.clone()
        }
    }

    /// A new account, signed in (sign-up signs in).
    async fn account(&mut self, who: &str) -> Result<(String, Browser), Failure> {
        let mut b = self.browser();
        let email = self.email(who);
        b.expect(
            "POST",
            "/sign-up/email",
            Some(json!({"email": email, "password": self.password, "name": format!("cutover validate {who}")})),
            200,
        )
        .await?;
        self.created.push((email.clone(), b.clone()));
        Ok((email, b))
    }

    async fn org(&mut self, b: &mut Browser, name: &str) -> Result<String, Failure> {
        let slug = format!("cutover-validate-{}-{name}", self.tag);
        let body = b
            .expect(
                "POST",
                "/organization/create",
                Some(json!({"name": slug, "slug": slug})),
                200,
            )
            .await?;
        let id = body["id"]
            .as_str()
            .ok_or_else(|| {
                fail(
                    format!("no organization id in {}", short(&body)),
                    "POST /organization/create",
                )
            })?
            .to_string();
        self.orgs.push((id.clone(), b.clone()));
        Ok(id)
    }

    async fn check(&mut self, name: &str) -> Outcome {
        match name {
            "email_sign_in" => self.email_sign_in().await,
            "logout" => self.logout().await,
            "organization_switching" => self.organization_switching().await,
            "role_check" => self.role_check().await,
            "invitation_accept" => self.invitation_accept().await,
            "account_deletion" => self.account_deletion().await,
            _ => unreachable!("checked when the plan was read"),
        }
    }

    async fn email_sign_in(&mut self) -> Outcome {
        let (email, _) = self.account("signin").await?;
        let mut b = self.browser();
        let body = b
            .expect(
                "POST",
                "/sign-in/email",
                Some(json!({"email": email, "password": self.password})),
                200,
            )
            .await?;
        if !b.cookies.contains_key("better-auth.session_token") {
            return Err(fail(
                "sign-in set no better-auth.session_token cookie",
                "POST /sign-in/email",
            ));
        }
        let session = b.expect("GET", "/get-session", None, 200).await?;
        if session["user"]["email"] != json!(email) {
            return Err(fail(
                format!("get-session does not show the account: {}", short(&session)),
                "GET /get-session",
            ));
        }
        let wrong = b
            .call(
                "POST",
                "/sign-in/email",
                Some(json!({"email": email, "password": "not-the-password"})),
            )
            .await?;
        if wrong.status != 401 {
            return Err(fail(
                format!("a wrong password got {}, expected 401", wrong.status),
                &wrong.request,
            ));
        }
        Ok(format!(
            "signed up, signed in as {} and seen by get-session; a wrong password is refused",
            body["user"]["id"]
        ))
    }

    async fn logout(&mut self) -> Outcome {
        let (_, mut b) = self.account("logout").await?;
        let old = b.cookies.clone();
        b.expect("POST", "/sign-out", Some(json!({})), 200).await?;
        let a = b.call("GET", "/get-session", None).await?;
        if a.status != 200 || !a.body.is_null() {
            return Err(fail(
                format!(
                    "still signed in after sign-out: {} {}",
                    a.status,
                    short(&a.body)
                ),
                &a.request,
            ));
        }
        let mut replay = self.browser();
        replay.cookies = old;
        let a = replay.call("GET", "/get-session", None).await?;
        if !a.body.is_null() {
            return Err(fail(
                "the signed-out session cookie still works when replayed",
                &a.request,
            ));
        }
        Ok("sign-out ends the session; the old cookie no longer works".into())
    }

    async fn organization_switching(&mut self) -> Outcome {
        let (_, mut b) = self.account("orgs").await?;
        let one = self.org(&mut b, "one").await?;
        let two = self.org(&mut b, "two").await?;
        for org in [&one, &two, &one] {
            let body = b
                .expect(
                    "POST",
                    "/organization/set-active",
                    Some(json!({"organizationId": org})),
                    200,
                )
                .await?;
            if body["activeOrganizationId"] != json!(org) {
                return Err(fail(
                    format!("set-active answered {}", short(&body)),
                    "POST /organization/set-active",
                ));
            }
            let member = b
                .expect("GET", "/organization/get-active-member", None, 200)
                .await?;
            if member["organizationId"] != json!(org) {
                return Err(fail(
                    format!(
                        "active organization is {}, expected {org}",
                        member["organizationId"]
                    ),
                    "GET /organization/get-active-member",
                ));
            }
        }
        Ok(
            "two organizations created; switching between them moves the active organization"
                .into(),
        )
    }

    /// An owner, and a member who joined by invitation: (owner, member, org).
    async fn org_with_member(
        &mut self,
        label: &str,
    ) -> Result<(Browser, Browser, String), Failure> {
        let (_, mut owner) = self.account(&format!("{label}-owner")).await?;
        let org = self.org(&mut owner, label).await?;
        let invitee = self.email(&format!("{label}-member"));
        let inv = owner
            .expect(
                "POST",
                "/organization/invite-member",
                Some(json!({"email": invitee, "role": "member", "organizationId": org})),
                200,
            )
            .await?;
        let inv_id = inv["invitation"]["id"]
            .as_str()
            .ok_or_else(|| {
                fail(
                    format!("no invitation id in {}", short(&inv)),
                    "POST /organization/invite-member",
                )
            })?
            .to_string();
        let (_, mut member) = self.account(&format!("{label}-member")).await?;
        let accepted = member
            .expect(
                "POST",
                "/organization/accept-invitation",
                Some(json!({"invitationId": inv_id})),
                200,
            )
            .await?;
        if accepted["member"]["role"] != json!("member") {
            return Err(fail(
                format!("accepting gave {}", short(&accepted)),
                "POST /organization/accept-invitation",
            ));
        }
        member
            .expect(
                "POST",
                "/organization/set-active",
                Some(json!({"organizationId": org})),
                200,
            )
            .await?;
        Ok((owner, member, org))
    }

    /// The owner/member pair both organization checks use, made once.
    async fn pair(&mut self) -> Result<(Browser, Browser, String), Failure> {
        if let Some(p) = &self.pair {
            return Ok(p.clone());
        }
        let p = self.org_with_member("team").await?;
        self.pair = Some(p.clone());
        Ok(p)
    }

    async fn invitation_accept(&mut self) -> Outcome {
        let (_, mut member, org) = self.pair().await?;
        let me = member
            .expect("GET", "/organization/get-active-member", None, 200)
            .await?;
        if me["organizationId"] != json!(org) {
            return Err(fail(
                format!("the invitee is not a member: {}", short(&me)),
                "GET /organization/get-active-member",
            ));
        }
        Ok(
            "an invitation sent by the owner is accepted by a new account, which becomes a member"
                .into(),
        )
    }

    async fn role_check(&mut self) -> Outcome {
        let (mut owner, mut member, org) = self.pair().await?;
        owner
            .expect(
                "POST",
                "/organization/set-active",
                Some(json!({"organizationId": org})),
                200,
            )
            .await?;
        let o = owner
            .expect("GET", "/organization/get-active-member", None, 200)
            .await?;
        if o["role"] != json!("owner") {
            return Err(fail(
                format!("the creator's role is {}, expected owner", o["role"]),
                "GET /organization/get-active-member",
            ));
        }
        let m = member
            .expect("GET", "/organization/get-active-member", None, 200)
            .await?;
        if m["role"] != json!("member") {
            return Err(fail(
                format!("the invitee's role is {}, expected member", m["role"]),
                "GET /organization/get-active-member",
            ));
        }
        let denied = member
            .call(
                "POST",
                "/organization/invite-member",
                Some(json!({"email": self.email("roles-other"), "role": "member", "organizationId": org})),
            )
            .await?;
        if denied.status != 403 {
            return Err(fail(
                format!("a member inviting got {}, expected 403", denied.status),
                &denied.request,
            ));
        }
        owner
            .expect(
                "POST",
                "/organization/invite-member",
                Some(json!({"email": self.email("roles-other"), "role": "member", "organizationId": org})),
                200,
            )
            .await?;
        Ok("owner and member roles as expected; a member may not invite, the owner may".into())
    }

    async fn account_deletion(&mut self) -> Outcome {
        let (email, mut b) = self.account("delete").await?;
        b.expect(
            "POST",
            "/delete-user",
            Some(json!({"password": self.password})),
            200,
        )
        .await?;
        self.created.retain(|(e, _)| *e != email);
        let mut again = self.browser();
        let a = again
            .call(
                "POST",
                "/sign-in/email",
                Some(json!({"email": email, "password": self.password})),
            )
            .await?;
        if a.status != 401 {
            return Err(fail(
                format!("the deleted account can still sign in ({})", a.status),
                &a.request,
            ));
        }
        Ok("the account deletes itself and can no longer sign in".into())
    }

    /// Deletes what the run created; returns what could not be deleted.
    async fn cleanup(&mut self) -> Vec<String> {
        let mut left = Vec::new();
        for (org, mut b) in std::mem::take(&mut self.orgs) {
            if let Err(f) = b
                .expect(
                    "POST",
                    "/organization/delete",
                    Some(json!({"organizationId": org})),
                    200,
                )
                .await
            {
                left.push(format!("organization {org}: {}", f.reason));
            }
        }
        for (email, mut b) in std::mem::take(&mut self.created) {
            let body = json!({"password": self.password});
            if b.expect("POST", "/delete-user", Some(body.clone()), 200)
                .await
                .is_ok()
            {
                continue;
            }
            // The check signed this browser out: sign in afresh to delete.
            let mut fresh = self.browser();
            let signed = fresh
                .expect(
                    "POST",
                    "/sign-in/email",
                    Some(json!({"email": email, "password": self.password})),
                    200,
                )
                .await;
            let result = match signed {
                Ok(_) => fresh
                    .expect("POST", "/delete-user", Some(body), 200)
                    .await
                    .map(|_| ()),
                Err(f) => Err(f),
            };
            if let Err(f) = result {
                left.push(format!("account {email}: {}", f.reason));
            }
        }
        left
    }
}

pub async fn run(args: ValidateArgs) -> anyhow::Result<Exit> {
    let cfg = super::load_config(&args.config.path)?;
    let text = std::fs::read_to_string(&args.plan)
        .map_err(|e| UsageError(format!("cannot read the plan {}: {e}", args.plan.display())))?;
    let plan: Plan =
        toml::from_str(&text).map_err(|e| UsageError(format!("{}: {e}", args.plan.display())))?;
    for c in &plan.checks {
        if !CHECKS.contains(&c.as_str()) {
            return Err(UsageError(format!(
                "{}: unknown check `{c}` (automatic checks: {}; others go under [manual])",
                args.plan.display(),
                CHECKS.join(", ")
            ))
            .into());
        }
    }
    let base = plan.base_url.trim_end_matches('/').to_string();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(UsageError(format!(
            "{}: base_url `{base}` is not an http(s) URL",
            args.plan.display()
        ))
        .into());
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")?;
    let tag = {
        use rand::Rng as _;
        format!("{:08x}", rand::rng().random::<u32>())
    };
    let mut run = Run {
        template: Browser {
            http,
            origin: plan.origin.clone().unwrap_or_else(|| base.clone()),
            base,
            auth: cfg.kernia.base_path.trim_end_matches('/').to_string(),
            cookies: BTreeMap::new(),
        },
        domain: plan.email_domain.clone(),
        password: format!("cutover-validate-{tag}-Pw1"),
        tag,
        created: Vec::new(),
        orgs: Vec::new(),
        pair: None,
    };

    let mut results = Vec::new();
    let mut failed = 0;
    for name in &plan.checks {
        let outcome = run.check(name).await;
        if outcome.is_err() {
            failed += 1;
        }
        results.push((name.clone(), outcome));
    }
    let left = run.cleanup().await;

    if args.json {
        let checks: Vec<Value> = results
            .iter()
            .map(|(name, o)| match o {
                Ok(detail) => json!({"check": name, "result": "pass", "detail": detail}),
                Err(f) => json!({"check": name, "result": "fail", "reason": f.reason, "request": f.request}),
            })
            .chain(plan.manual.iter().map(|(name, how)| json!({"check": name, "result": "manual", "how": how})))
            .collect();
        println!(
            "{}",
            json!({"passed": failed == 0, "checks": checks, "cleanup_left": left})
        );
    } else {
        for (name, o) in &results {
            match o {
                Ok(detail) => println!("pass    {name:<24} {detail}"),
                Err(f) => println!("FAIL    {name:<24} {} (request: {})", f.reason, f.request),
            }
        }
        for (name, how) in &plan.manual {
            println!("manual  {name:<24} not run by cutover: {how}");
        }
        for l in &left {
            println!("cleanup could not delete {l}");
        }
        println!(
            "{} of {} automatic checks passed; {} manual",
            results.len() - failed,
            results.len(),
            plan.manual.len()
        );
    }
    Ok(if failed == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}
