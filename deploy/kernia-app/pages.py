"""The demo pages of the sample Kernia app (used by scripts/dev.sh): plain HTML
and `fetch`, no scripts from anywhere else.

- `/app`: who cutover says the caller is (the `x-cutover-*` headers of
  docs/IDENTITY.md), with a sign-out button; the legacy demo app
  (deploy/legacy-app) serves a page at the same path, so a browser sees which
  side cutover sent it to.
- `/sign-in`: email (or username) and password, sent to Kernia's own routes
  (`/api/auth/sign-in/email` or `/sign-in/username`) through cutover, which
  migrates a Clerk user's password on the way; a TOTP step when Kernia answers
  `twoFactorRedirect`; the `403 PASSWORD_RESET_REQUIRED` answer explained.
"""

from __future__ import annotations

import html

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
.banner { padding: .6rem 1rem; border-radius: .4rem; background: #0b7a53; color: white; }
.box { border: 1px solid #ccc; border-radius: .4rem; padding: 1rem; margin: 1rem 0; }
code, td { font-family: ui-monospace, monospace; font-size: 14px; }
td { padding: .1rem .6rem .1rem 0; vertical-align: top; word-break: break-all; }
.bad { color: #b00; }
input { font: inherit; padding: .3rem; width: 20rem; } button { font: inherit; padding: .3rem 1rem; }
"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title><meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head><body>
<p class="banner">Kernia app &mdash; runs on Kernia (served by <code>kernia-app</code>)</p>
{body}</body></html>""",
        headers={"cache-control": "no-store"},
    )


SIGN_IN_SCRIPT = """
const base = "/api/auth";
const $ = (id) => document.getElementById(id);
async function post(path, body) {
  const r = await fetch(base + path, {method: "POST", credentials: "same-origin",
    headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  return {status: r.status, data};
}
function say(text) { $("msg").textContent = text; }
$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  say("Signing in...");
  const id = $("identifier").value.trim(), password = $("password").value;
  const r = id.includes("@")
    ? await post("/sign-in/email", {email: id, password})
    : await post("/sign-in/username", {username: id, password});
  if (r.status === 200 && r.data && r.data.twoFactorRedirect) {
    $("form").hidden = true; $("totp").hidden = false; say("Enter the code from your authenticator app.");
    $("code").focus();
    return;
  }
  if (r.status === 200) { location.href = "/app"; return; }
  const code = r.data && r.data.code;
  if (code === "PASSWORD_RESET_REQUIRED") {
    say("This account must set a new password: a reset link has been sent (" + (r.data.message || "") + ").");
  } else {
    say("Sign-in failed (" + r.status + (code ? ", " + code : "") + ")" + (r.data && r.data.message ? ": " + r.data.message : ""));
  }
});
$("totp").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await post("/two-factor/verify-totp", {code: $("code").value.trim()});
  if (r.status === 200) { location.href = "/app"; return; }
  say("That code did not work (" + r.status + ").");
});
"""

SIGN_OUT_SCRIPT = """
document.getElementById("signout").addEventListener("click", async () => {
  await fetch("/api/auth/sign-out", {method: "POST", credentials: "same-origin",
    headers: {"content-type": "application/json"}, body: "{}"});
  location.href = "/app";
});
"""


def install(app: FastAPI) -> None:
    """Adds the demo pages to the sample app."""

    @app.get("/sign-in", response_class=HTMLResponse)
    async def sign_in_page() -> HTMLResponse:
        return _page(
            "Sign in - Kernia app",
            f"""<h1>Sign in</h1>
<form id="form"><p><label>Email address or username<br><input id="identifier" autofocus></label></p>
<p><label>Password<br><input id="password" type="password"></label></p>
<p><button>Sign in</button></p></form>
<form id="totp" hidden><p><label>Authenticator code<br><input id="code" inputmode="numeric" autocomplete="one-time-code"></label></p>
<p><button>Verify</button></p></form>
<p id="msg" role="status"></p>
<p>Your existing password works here: cutover checks it against your old account
the first time and moves it to Kernia.</p>
<script>{SIGN_IN_SCRIPT}</script>""",
        )

    @app.get("/app", response_class=HTMLResponse)
    async def app_page(request: Request) -> HTMLResponse:
        ident = {k: v for k, v in request.headers.items() if k.startswith("x-cutover-")}
        provider = ident.get("x-cutover-provider", "none")
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
            for k, v in sorted(ident.items())
            if k != "x-cutover-assertion"
        )
        if provider == "kernia":
            who = f"""<h1>Hello</h1>
<p id="who" data-provider="kernia">Signed in <b>with Kernia</b> as
<code>{html.escape(ident.get("x-cutover-user-id", ""))}</code>.</p>
<p><button id="signout">Sign out</button></p><script>{SIGN_OUT_SCRIPT}</script>"""
        else:
            who = f"""<h1>Welcome</h1>
<p id="who" data-provider="{html.escape(provider)}">Not signed in.</p>
<p><a href="/sign-in">Sign in</a></p>"""
        return _page(
            "Kernia app",
            f"""{who}<div class="box"><b>What cutover told this app</b>
<table>{rows or "<tr><td>(no identity headers)</td></tr>"}</table>
<p>x-cutover-assertion: {"present" if "x-cutover-assertion" in ident else "none"}</p></div>""",
        )
