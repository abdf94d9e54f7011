//! `GET /` on the admin listener: one server-rendered page, no build step, no
//! CDN, no external request. The chart is inline SVG drawn here; the only
//! script is the few lines behind the kill switch (and its confirmation),
//! allowed by a per-response CSP nonce. Every value that came from outside
//! (override ids, reasons, hasher and method names) is HTML-escaped.

use std::fmt::Write as _;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use super::{Admin, Body, error};
use crate::control::progress::{self, Progress};
use crate::control::store::{self, HistoryEntry};

pub(super) async fn page(admin: &Admin) -> Response<Body> {
    let app = &admin.app;
    let progress = progress::compute(&app.db, progress::DEFAULT_ACTIVE_DAYS).await;
    let history = store::history(&app.db, 20).await;
    let (progress, history) = match (progress, history) {
        (Ok(p), Ok(h)) => (p, h),
        (Err(e), _) => {
            tracing::warn!(error = %e, "dashboard: cannot compute progress");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable",
            );
        }
        (_, Err(e)) => {
            tracing::warn!(error = %e, "dashboard: cannot read the rollout history");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable",
            );
        }
    };
    let nonce = nonce();
    let html = render(admin, &progress, &history, &nonce);
    let mut resp = Response::new(Full::new(Bytes::from(html)));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    super::with_security_headers(resp)
}

fn nonce() -> String {
    use rand::RngCore as _;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// HTML-escape text and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px;display:flex;justify-content:space-between;align-items:center}
header h1{font-size:18px;margin:0}
main{padding:20px 24px;display:grid;gap:18px;grid-template-columns:repeat(auto-fit,minmax(320px,1fr))}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 16px}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 10px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{flex:1 1 140px;border:1px solid #dde1e7;border-radius:6px;padding:10px 12px}
.card .n{font-size:24px;font-weight:600}
.card .l{color:#5b6472;font-size:12px}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:4px 6px;border-bottom:1px solid #eef0f3;font-variant-numeric:tabular-nums}
td.n,th.n{text-align:right}
.kill-on{color:#b00020;font-weight:700}
button{font:inherit;padding:6px 12px;border-radius:6px;border:1px solid #99a;cursor:pointer}
button.danger{background:#b00020;color:#fff;border-color:#b00020}
input[type=text]{font:inherit;padding:5px 8px;border:1px solid #99a;border-radius:6px;min-width:260px}
svg text{font:11px system-ui,sans-serif;fill:#5b6472}
.bar{fill:#4f7cff}.share{fill:none;stroke:#1aa36f;stroke-width:2}.active{fill:none;stroke:#e08a00;stroke-width:2;stroke-dasharray:5 3}
.legend span{margin-right:14px}.sw{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
.sw-bar{background:#4f7cff}.sw-share{background:#1aa36f}.sw-active{background:#e08a00}
#msg{margin-left:10px}
"#;

fn render(admin: &Admin, p: &Progress, history: &[HistoryEntry], nonce: &str) -> String {
    let applied = admin.app.routing.applied();
    let r = &applied.rollout;
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>cutover — migration dashboard</title><style nonce="{nonce}">{STYLE}</style></head><body>
<header><h1>cutover — Clerk → Kernia migration</h1><div>rollout v{} · {}% to kernia{}</div></header><main>"#,
        applied.version,
        r.percentage,
        if r.kill_switch {
            r#" · <span class="kill-on">KILL SWITCH ON</span>"#
        } else {
            ""
        }
    );

    // Headline numbers.
    let _ = write!(
        h,
        r#"<section class="wide"><h2>Where the migration stands</h2><div class="cards">
<div class="card"><div class="n" id="n-users">{}</div><div class="l">users (not removed)</div></div>
<div class="card"><div class="n" id="n-migrated">{}</div><div class="l">migrated ({})</div></div>
<div class="card"><div class="n" id="n-coverage">{}</div><div class="l">active coverage: {} of {} users seen in {} days</div></div>
<div class="card"><div class="n" id="n-stragglers">{}</div><div class="l">stragglers ({} active, {} inactive)</div></div>
</div></section>"#,
        p.users,
        p.migrated,
        pct(p.migrated_share),
        pct(p.active.coverage),
        p.active.migrated,
        p.active.seen,
        p.active.days,
        p.stragglers.total,
        p.stragglers.active,
        p.stragglers.inactive
    );

    // The chart.
    let _ = write!(
        h,
        r#"<section class="wide"><h2>Progress over time</h2>{}<div class="legend"><span><i class="sw sw-bar"></i>migrated per day</span><span><i class="sw sw-share"></i>cumulative share of users</span><span><i class="sw sw-active"></i>active coverage (daily snapshot)</span></div></section>"#,
        chart(p)
    );

    // States, hashers, methods.
    let _ = write!(
        h,
        r#"<section><h2>Users by state</h2><table id="states"><tr><th>state</th><th class="n">users</th></tr>"#
    );
    for (state, n) in &p.by_state {
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td class="n">{n}</td></tr>"#,
            esc(state)
        );
    }
    h.push_str("</table></section>");
    let _ = write!(
        h,
        r#"<section><h2>By hasher</h2><table id="hashers"><tr><th>hasher</th><th class="n">users</th><th class="n">migrated</th><th class="n">pending</th></tr>"#
    );
    for x in &p.by_hasher {
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(&x.hasher),
            x.users,
            x.migrated,
            x.pending
        );
    }
    h.push_str("</table></section>");
    let _ = write!(
        h,
        r#"<section><h2>Migrated by method</h2><table id="methods"><tr><th>method</th><th class="n">users</th></tr>"#
    );
    for (m, n) in &p.migrated_by_method {
        let _ = write!(h, r#"<tr><td>{}</td><td class="n">{n}</td></tr>"#, esc(m));
    }
    h.push_str("</table></section>");

    // Reset deliveries and errors seen by this copy.
    let _ = write!(
        h,
        r#"<section><h2>This copy: resets and errors</h2><table id="events"><tr><th>counter</th><th class="n">since start</th></tr>"#
    );
    for (name, value) in crate::metrics::dashboard_counters() {
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td class="n">{value}</td></tr>"#,
            esc(&name)
        );
    }
    h.push_str("</table></section>");

    // The rollout and its controls.
    let _ = write!(
        h,
        r#"<section><h2>Rollout (version {})</h2><table id="rollout">
<tr><td>percentage to kernia</td><td class="n">{}%</td></tr>
<tr><td>kill switch</td><td class="n" id="kill-state">{}</td></tr>
<tr><td>re-authenticate migrated Clerk sessions</td><td class="n">{}</td></tr>
<tr><td>allow: users / domains / orgs</td><td class="n">{} / {} / {}</td></tr>
<tr><td>deny: users / domains / orgs</td><td class="n">{} / {} / {}</td></tr>
<tr><td>this copy routes by it since</td><td class="n">{} UTC</td></tr></table>
<p><input type="text" id="reason" placeholder="reason (required, kept in the audit trail)"></p>
<p>{}<span id="msg"></span></p></section>"#,
        applied.version,
        r.percentage,
        if r.kill_switch { "ON" } else { "off" },
        if r.reauth_migrated_clerk_sessions {
            "on"
        } else {
            "off"
        },
        r.allow.users.len(),
        r.allow.email_domains.len(),
        r.allow.orgs.len(),
        r.deny.users.len(),
        r.deny.email_domains.len(),
        r.deny.orgs.len(),
        crate::cmd::timestamp(applied.applied_at_ms),
        if r.kill_switch {
            r#"<button id="resume">Release the kill switch…</button>"#
        } else {
            r#"<button id="kill" class="danger">Pull the kill switch…</button>"#
        }
    );

    // History.
    let _ = write!(
        h,
        r#"<section class="wide"><h2>Rollout history</h2><table id="history"><tr><th>version</th><th>when (UTC)</th><th>via</th><th>by</th><th>change</th><th>reason</th></tr>"#
    );
    for e in history {
        let change = if e.fields == ["seed"] {
            "seeded from the file".to_string()
        } else {
            e.fields
                .iter()
                .map(|f| format!("{f} {} → {}", e.from[f.as_str()], e.to[f.as_str()]))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.version,
            crate::cmd::timestamp(e.changed_at_ms),
            esc(&e.interface),
            esc(e.actor.as_deref().unwrap_or("-")),
            esc(&change),
            esc(&e.reason)
        );
    }
    h.push_str("</table></section></main>");
    let _ = write!(
        h,
        r#"<script nonce="{nonce}">{SCRIPT}</script></body></html>"#
    );
    h
}

/// The kill switch and its release, each behind a confirmation and a reason.
const SCRIPT: &str = r#"
async function send(change, question) {
  const msg = document.getElementById('msg');
  const reason = document.getElementById('reason').value.trim();
  if (!reason) { msg.textContent = 'Give a reason first.'; return; }
  if (!window.confirm(question)) { msg.textContent = 'Nothing changed.'; return; }
  change.reason = reason;
  const r = await fetch('/api/rollout', {method: 'PUT', headers: {'content-type': 'application/json'}, body: JSON.stringify(change)});
  const body = await r.json().catch(() => ({}));
  if (r.ok) { msg.textContent = 'Done: version ' + body.version + '. Every copy applies it within a second.'; setTimeout(() => location.reload(), 600); }
  else { msg.textContent = 'Refused: ' + (body.error || r.status); }
}
const kill = document.getElementById('kill');
if (kill) kill.addEventListener('click', () => send({kill_switch: true}, 'Pull the kill switch on every copy? Everyone without a Kernia session goes to legacy.'));
const resume = document.getElementById('resume');
if (resume) resume.addEventListener('click', () => send({kill_switch: false}, 'Release the kill switch? Routing follows the percentage again.'));
"#;

/// Migrated per day (bars, left axis) with the cumulative share of users and
/// the active coverage snapshots (lines, right axis 0–100%), last 90 days.
fn chart(p: &Progress) -> String {
    const W: f64 = 900.0;
    const H: f64 = 260.0;
    const L: f64 = 48.0; // left margin
    const R: f64 = 48.0;
    const T: f64 = 14.0;
    const B: f64 = 34.0;
    // A continuous day axis (days without migrations included), last 90 days.
    let known: std::collections::BTreeMap<i64, i64> = p
        .migrated_per_day
        .iter()
        .filter_map(|d| Some((progress::day_of_date(&d.date).ok()?, d.migrated)))
        .collect();
    let days: Vec<progress::DayCount> = match (known.keys().next(), known.keys().last()) {
        (Some(&first), Some(&last)) => (first.max(last - 89)..=last)
            .map(|d| progress::DayCount {
                date: progress::date_of_day(d),
                migrated: known.get(&d).copied().unwrap_or(0),
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="progress-chart" role="img" aria-label="migrated per day and cumulative share" viewBox="0 0 {W} {H}" width="100%" height="{H}" xmlns="http://www.w3.org/2000/svg" data-days="{}" data-migrated="{}">"#,
        days.len(),
        days.iter().map(|d| d.migrated).sum::<i64>()
    );
    let (pw, ph) = (W - L - R, H - T - B);
    let _ = write!(
        s,
        r##"<line x1="{L}" y1="{}" x2="{}" y2="{}" stroke="#99a"/><line x1="{L}" y1="{T}" x2="{L}" y2="{}" stroke="#99a"/>"##,
        T + ph,
        L + pw,
        T + ph,
        T + ph
    );
    if days.is_empty() {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no migrations yet</text></svg>"#,
            L + pw / 2.0,
            T + ph / 2.0
        );
        return s;
    }
    let max = days.iter().map(|d| d.migrated).max().unwrap_or(1).max(1) as f64;
    let slot = pw / days.len() as f64;
    let bar = (slot * 0.7).max(1.0);
    // Cumulative migrated before the window, so the share line starts right.
    let before: i64 = p.migrated - days.iter().map(|d| d.migrated).sum::<i64>();
    let mut cumulative = before.max(0);
    let mut share_points = Vec::new();
    for (i, d) in days.iter().enumerate() {
        let x = L + slot * i as f64 + (slot - bar) / 2.0;
        let bh = d.migrated as f64 / max * ph;
        cumulative += d.migrated;
        let share = if p.users > 0 {
            cumulative as f64 / p.users as f64
        } else {
            0.0
        };
        share_points.push(format!(
            "{:.1},{:.1}",
            L + slot * i as f64 + slot / 2.0,
            T + ph - share.min(1.0) * ph
        ));
        if d.migrated == 0 {
            continue;
        }
        let _ = write!(
            s,
            r#"<rect class="bar" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{bh:.1}" data-date="{}" data-migrated="{}"><title>{}: {} migrated</title></rect>"#,
            T + ph - bh,
            d.date,
            d.migrated,
            d.date,
            d.migrated
        );
    }
    let _ = write!(
        s,
        r#"<polyline class="share" points="{}"/>"#,
        share_points.join(" ")
    );
    // Active coverage snapshots, placed on the same day axis when they fall in it.
    let active_points: Vec<String> = p
        .history
        .iter()
        .filter_map(|snap| {
            let i = days.iter().position(|d| d.date == snap.date)?;
            let cov = if snap.active > 0 {
                snap.active_migrated as f64 / snap.active as f64
            } else {
                0.0
            };
            Some(format!(
                "{:.1},{:.1}",
                L + slot * i as f64 + slot / 2.0,
                T + ph - cov.min(1.0) * ph
            ))
        })
        .collect();
    if !active_points.is_empty() {
        let _ = write!(
            s,
            r#"<polyline class="active" points="{}"/>"#,
            active_points.join(" ")
        );
    }
    // Axes labels.
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">0</text><text x="{}" y="{}">100%</text><text x="{}" y="{}">0%</text>"#,
        L - 6.0,
        T + 10.0,
        max as i64,
        L - 6.0,
        T + ph,
        L + pw + 6.0,
        T + 10.0,
        L + pw + 6.0,
        T + ph
    );
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let _ = write!(
            s,
            r#"<text x="{L}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"#,
            H - 10.0,
            first.date,
            L + pw,
            H - 10.0,
            last.date
        );
    }
    s.push_str("</svg>");
    s
}
