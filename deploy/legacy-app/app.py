"""The legacy demo app: an app that still runs on Clerk, and a local stand-in for
Clerk's sign-in. Used by scripts/dev.sh and deploy/compose.yaml.

Two listeners, standard library only (plus `cryptography`, which the Kernia
environment already has, for RS256):

- the **app** (LEGACY_PORT, default 3002), reached through cutover. `/app` is a
  page showing who cutover says the caller is (the `x-cutover-*` headers of
  docs/IDENTITY.md, and the signed `x-cutover-assertion` checked with the shared
  HS256 secret); `/whoami` is the same as JSON; `/sign-in` sends the browser to
  the stand-in's sign-in page, as a Clerk app sends it to Clerk's.
- the **Clerk stand-in** (CLERK_STANDIN_PORT, default 3010), playing Clerk's
  Frontend API for the demo's Clerk users (deploy/demo/users.csv): a sign-in
  page that checks the password against the exported digest (with
  `cutover hash verify`, as Clerk checks its stored hash), then writes the
  cookies clerk-js and Clerk write (Clerk's session-token rules): `__session` and
  `__session_<suffix>` holding a real Clerk-shaped v2 session token (RS256,
  `kid` = the instance id, `cat` = session, 60 s lifetime), `__client_uat` and
  `__client_uat_<suffix>` (Unix seconds of the sign-in), and an HttpOnly
  `__client`. `POST /v1/client/sessions/<sid>/tokens` mints a fresh token the
  way clerk-js refreshes (the app page calls it every 30 s); `/sign-out` ends
  the session (`__client_uat=0`); `/.well-known/jwks.json` (and `/v1/jwks`)
  serve the public key, which cutover's `[clerk] jwks_url` points at.

The signing key is generated on first start into CLERK_STANDIN_KEY (default
.dev/clerk-standin-key.pem, mode 0600, never committed).

Environment:
  LEGACY_HOST             listen address of both listeners, default 127.0.0.1
  LEGACY_PORT             the app, default 3002
  CLERK_STANDIN_PORT      the Clerk stand-in, default 3010
  CLERK_STANDIN_KEY       the RSA key file, default .dev/clerk-standin-key.pem
  CLERK_INSTANCE_HOST     the Frontend API host tokens name, default
                          cutover-demo.clerk.accounts.dev (iss https://<host>)
  CLERK_STANDIN_PUBLIC_URL how browsers reach the stand-in, default
                          http://<the host the browser used>:<CLERK_STANDIN_PORT>
  DEMO_DIR                the sample export, default deploy/demo
  CUTOVER_BIN             the cutover binary, for `hash verify`
  CUTOVER_ASSERTION_SECRET the [assertion] secret, to check x-cutover-assertion
  CLERK_STANDIN_APP_URL   where sign-in goes without a redirect_url, default
                          http://127.0.0.1:8080/app (the app through cutover)

Once both listen it prints `legacy-app listening on <host>:<port>, clerk
stand-in on <host>:<port>` to stdout.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import html
import http.cookies
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MAX_BODY = 16 * 1024
# Where the stand-in's sign-in page sends the browser when no redirect_url is given.
DEFAULT_APP_URL = os.environ.get("CLERK_STANDIN_APP_URL", "http://127.0.0.1:8080/app")
TOKEN_LIFETIME = 60  # Clerk's default session-token lifetime, seconds


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ------------------------------------------------------------------ Clerk instance


class Instance:
    """The stand-in Clerk instance: its key, kid, publishable key and users."""

    def __init__(self) -> None:
        self.host = os.environ.get("CLERK_INSTANCE_HOST", "cutover-demo.clerk.accounts.dev")
        self.issuer = f"https://{self.host}"
        prefix = "pk_test_" if self.host.endswith(".clerk.accounts.dev") else "pk_live_"
        self.publishable_key = prefix + base64.b64encode(f"{self.host}$".encode()).decode()
        # Clerk's getCookieSuffix: base64(sha1(publishable key)), first 8, url-safe.
        digest = base64.b64encode(hashlib.sha1(self.publishable_key.encode()).digest()).decode()
        self.suffix = digest[:8].replace("+", "-").replace("/", "_")
        self.key = self._load_key(os.environ.get("CLERK_STANDIN_KEY", ".dev/clerk-standin-key.pem"))
        numbers = self.key.public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        # A Clerk kid is the instance id (`ins_…`); derive a stable one from the key.
        fp = base64.b32encode(hashlib.sha256(n).digest()).decode().lower()
        self.kid = "ins_2" + fp[:26]
        self.jwks = json.dumps(
            {"keys": [{"use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256",
                       "n": b64url(n), "e": b64url(e)}]}
        ).encode()
        self.users = self._load_users(os.environ.get("DEMO_DIR", "deploy/demo"))
        self.cutover = os.environ.get("CUTOVER_BIN", "cutover")
        # __client value → {user, sid}; sessions that ended are removed.
        self.clients: dict[str, dict] = {}
        self.lock = threading.Lock()

    @staticmethod
    def _load_key(path: str):
        if os.path.exists(path):
            with open(path, "rb") as f:
                return serialization.load_pem_private_key(f.read(), password=None)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        print(f"legacy-app: generated the Clerk stand-in's signing key in {path}", file=sys.stderr)
        return key

    @staticmethod
    def _load_users(demo_dir: str) -> dict[str, dict]:
        users: dict[str, dict] = {}
        with open(os.path.join(demo_dir, "users.csv"), newline="") as f:
            for row in csv.DictReader(f):
                users[row["id"]] = row
        orgs = {}
        try:
            with open(os.path.join(demo_dir, "organizations.json")) as f:
                orgs = {o["id"]: o for o in json.load(f)["data"]}
            with open(os.path.join(demo_dir, "memberships.json")) as f:
                for m in json.load(f)["data"]:
                    user = users.get(m["public_user_data"]["user_id"])
                    org = orgs.get(m["organization"]["id"])
                    if user is not None and org is not None and "org" not in user:
                        user["org"] = {"id": org["id"], "slug": org["slug"], "name": org["name"],
                                       "role": m["role"]}
        except FileNotFoundError:
            pass
        return users

    def find(self, identifier: str) -> dict | None:
        ident = identifier.strip().lower()
        for user in self.users.values():
            if ident and ident in (user["primary_email_address"].lower(), user["username"].lower()):
                return user
        return None

    def check_password(self, user: dict, password: str) -> str | None:
        """None when the password matches, else the reason it does not."""
        if not user.get("password_digest"):
            return "This account has no password."
        if user["password_hasher"] == "awscognito":
            return ("This account was imported from AWS Cognito: Clerk would check the password "
                    "with Cognito, which this stand-in cannot do. Sign in at Kernia instead.")
        try:
            done = subprocess.run(
                [self.cutover, "hash", "verify", "--hasher", user["password_hasher"],
                 "--digest", user["password_digest"]],
                input=(password + "\n").encode(), capture_output=True, timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"The stand-in could not check the password ({type(e).__name__})."
        return None if done.returncode == 0 else "Password is incorrect. Try again, or use another method."

    def token(self, user: dict, sid: str, azp: str) -> str:
        """A v2 session token as Clerk mints it (Clerk's session-token rules)."""
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid, "cat": "cl_B7d4PD111AAA"}
        claims = {
            "azp": azp, "exp": now + TOKEN_LIFETIME, "fva": [0, -1], "iat": now,
            "iss": self.issuer, "jti": secrets.token_hex(10), "nbf": now - 5,
            "sid": sid, "sub": user["id"], "v": 2, "sts": "active",
        }
        org = user.get("org")
        if org:
            claims["o"] = {"id": org["id"], "slg": org["slug"],
                           "rol": org["role"].removeprefix("org:"), "per": "", "fpm": ""}
            claims["fea"] = ""
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)


# ------------------------------------------------------------------ helpers


def allowed_redirect(url: str) -> str | None:
    """Only loopback http(s) URLs: the stand-in is not an open redirector."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    if parts.scheme in ("http", "https") and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return url
    extra = os.environ.get("CLERK_STANDIN_REDIRECT_HOSTS", "")
    if parts.scheme in ("http", "https") and parts.hostname in [h for h in extra.split(",") if h]:
        return url
    return None


def origin_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page(title: str, body: str) -> bytes:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }}
.banner {{ padding: .6rem 1rem; border-radius: .4rem; background: #6c47ff; color: white; }}
.box {{ border: 1px solid #ccc; border-radius: .4rem; padding: 1rem; margin: 1rem 0; }}
code, td {{ font-family: ui-monospace, monospace; font-size: 14px; }}
td {{ padding: .1rem .6rem .1rem 0; vertical-align: top; word-break: break-all; }}
.ok {{ color: #080; }} .bad {{ color: #b00; }}
input {{ font: inherit; padding: .3rem; width: 20rem; }} button {{ font: inherit; padding: .3rem 1rem; }}
</style></head><body>{body}</body></html>""".encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "legacy-app"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        # One line per request without the query (it may hold redirect URLs) or cookies.
        sys.stderr.write(f"{self.command} {self.path.split('?')[0]} {args[1] if len(args) > 1 else ''}\n")

    def send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8",
             headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.send_header("cache-control", "no-store")
        for k, v in headers or []:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def redirect(self, location: str, headers: list[tuple[str, str]] | None = None) -> None:
        self.send(303, b"", "text/plain", [("location", location)] + (headers or []))

    def read_form(self) -> dict[str, str] | None:
        try:
            length = int(self.headers.get("content-length", "0"))
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY:
            return None
        raw = self.rfile.read(length).decode("utf-8", "replace")
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}

    def cookies(self) -> http.cookies.SimpleCookie:
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(self.headers.get("cookie", ""))
        except http.cookies.CookieError:
            pass
        return jar

    def browser_host(self) -> str:
        host = self.headers.get("x-forwarded-host") or self.headers.get("host") or "127.0.0.1"
        return urllib.parse.urlsplit("//" + host).hostname or "127.0.0.1"

    def browser_origin(self) -> str:
        proto = self.headers.get("x-forwarded-proto") or "http"
        host = self.headers.get("x-forwarded-host") or self.headers.get("host") or "127.0.0.1"
        return f"{proto}://{host}"


# ------------------------------------------------------------------ the Clerk stand-in


def standin_handler(inst: Instance):
    class StandIn(Handler):
        server_version = "clerk-standin"

        def session_cookies(self, token: str, uat: int) -> list[tuple[str, str]]:
            # clerk-js writes both the plain and the suffixed names; neither is
            # HttpOnly, SameSite=Lax (Clerk's session-token rules).
            out = []
            for name in ("__session", f"__session_{inst.suffix}"):
                out.append(("set-cookie", f"{name}={token}; Path=/; SameSite=Lax; Max-Age=31536000"))
            for name in ("__client_uat", f"__client_uat_{inst.suffix}"):
                out.append(("set-cookie", f"{name}={uat}; Path=/; SameSite=Lax; Max-Age=31536000"))
            return out

        def cors(self) -> list[tuple[str, str]]:
            origin = self.headers.get("origin")
            if origin and allowed_redirect(origin + "/"):
                return [("access-control-allow-origin", origin),
                        ("access-control-allow-credentials", "true"), ("vary", "origin")]
            return []

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            if url.path in ("/.well-known/jwks.json", "/v1/jwks"):
                self.send(200, inst.jwks, "application/json")
            elif url.path == "/sign-in":
                self.sign_in_page(query.get("redirect_url") or DEFAULT_APP_URL, "")
            elif url.path == "/sign-out":
                self.sign_out(query.get("redirect_url", ""))
            elif url.path == "/healthz":
                self.send(200, b"ok\n", "text/plain")
            else:
                self.send(404, b"not found\n", "text/plain")

        do_HEAD = do_GET

        def do_OPTIONS(self) -> None:
            self.send(204, b"", "text/plain", self.cors() + [
                ("access-control-allow-methods", "POST"), ("access-control-max-age", "600")])

        def do_POST(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path == "/sign-in":
                form = self.read_form()
                if form is None:
                    self.send(413, b"body too large\n", "text/plain")
                    return
                self.sign_in(form)
            elif path == "/sign-out":
                form = self.read_form() or {}
                self.sign_out(form.get("redirect_url", ""))
            elif path.startswith("/v1/client/sessions/") and path.endswith("/tokens"):
                self.refresh(path.split("/")[4])
            else:
                self.send(404, b"not found\n", "text/plain")

        def sign_in_page(self, redirect_url: str, error: str, identifier: str = "",
                         status: int = 200) -> None:
            err = f'<p class="bad">{html.escape(error)}</p>' if error else ""
            body = f"""<p class="banner">Clerk (local stand-in) &mdash; {html.escape(inst.host)}</p>
<h1>Sign in</h1>{err}
<form method="post" action="/sign-in">
<p><label>Email address or username<br><input name="identifier" value="{html.escape(identifier)}" autofocus></label></p>
<p><label>Password<br><input name="password" type="password"></label></p>
<input type="hidden" name="redirect_url" value="{html.escape(redirect_url)}">
<p><button>Continue</button></p></form>
<p>This page stands in for Clerk's hosted sign-in. It checks passwords against the digests
of the sample Clerk export (deploy/demo) and writes Clerk's session cookies.</p>"""
            self.send(status, page("Sign in - Clerk stand-in", body))

        def sign_in(self, form: dict[str, str]) -> None:
            redirect_url = allowed_redirect(form.get("redirect_url", ""))
            if redirect_url is None:
                self.sign_in_page("", "redirect_url must be a loopback http(s) URL of the app.",
                                  status=400)
                return
            identifier = form.get("identifier", "")
            user = inst.find(identifier)
            reason = "Couldn't find your account." if user is None else inst.check_password(
                user, form.get("password", ""))
            if reason is not None:
                self.sign_in_page(redirect_url, reason, identifier, status=422)
                return
            sid = "sess_" + secrets.token_hex(12)
            client = secrets.token_urlsafe(24)
            with inst.lock:
                inst.clients[client] = {"user": user["id"], "sid": sid,
                                        "azp": origin_of(redirect_url)}
            uat = int(time.time())
            token = inst.token(user, sid, origin_of(redirect_url))
            headers = self.session_cookies(token, uat)
            headers.append(("set-cookie", f"__client={client}; Path=/; HttpOnly; SameSite=Lax"))
            print(f"clerk-standin: {user['id']} signed in ({sid})", file=sys.stderr, flush=True)
            self.redirect(redirect_url, headers)

        def refresh(self, sid: str) -> None:
            morsel = self.cookies().get("__client")
            with inst.lock:
                client = inst.clients.get(morsel.value) if morsel else None
            if client is None or client["sid"] != sid:
                self.send(401, json.dumps({"errors": [{"code": "signed_out"}]}).encode(),
                          "application/json", self.cors())
                return
            token = inst.token(inst.users[client["user"]], sid, client["azp"])
            # Only __session is rewritten: __client_uat changes when the client does.
            headers = [h for h in self.session_cookies(token, 0) if "__session" in h[1]]
            self.send(200, json.dumps({"object": "token", "jwt": token}).encode(),
                      "application/json", self.cors() + headers)

        def sign_out(self, redirect_url: str) -> None:
            morsel = self.cookies().get("__client")
            if morsel:
                with inst.lock:
                    inst.clients.pop(morsel.value, None)
            headers = [("set-cookie", f"{n}=; Path=/; Max-Age=0")
                       for n in ("__session", f"__session_{inst.suffix}", "__client")]
            headers += [("set-cookie", f"{n}=0; Path=/; SameSite=Lax; Max-Age=31536000")
                        for n in ("__client_uat", f"__client_uat_{inst.suffix}")]
            target = allowed_redirect(redirect_url)
            if target:
                self.redirect(target, headers)
            else:
                self.send(200, page("Signed out", "<p>Signed out of Clerk.</p>"), headers=headers)

    return StandIn


# ------------------------------------------------------------------ the legacy app


def verify_assertion(token: str | None, secret: str | None) -> tuple[bool, str]:
    """Checks cutover's HS256 assertion (docs/IDENTITY.md) with the standard library."""
    if not token:
        return False, "no assertion (anonymous)"
    if not secret:
        return False, "CUTOVER_ASSERTION_SECRET is not set: not checked"
    try:
        head, body, sig = token.split(".")
        header = json.loads(b64url_decode(head))
        if header.get("alg") != "HS256":
            return False, f"unexpected alg {header.get('alg')!r}"
        expected = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, b64url_decode(sig)):
            return False, "bad signature"
        claims = json.loads(b64url_decode(body))
        if claims.get("iss") != "cutover" or int(claims.get("exp", 0)) < time.time() - 5:
            return False, "expired or wrong issuer"
        return True, f"verified (HS256), sub={claims.get('sub')}, provider={claims.get('provider')}"
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        return False, f"malformed ({type(e).__name__})"


def app_handler(inst: Instance, standin_port: int):
    secret = os.environ.get("CUTOVER_ASSERTION_SECRET")
    public = os.environ.get("CLERK_STANDIN_PUBLIC_URL")

    class App(Handler):
        def fapi(self) -> str:
            return public or f"http://{self.browser_host()}:{standin_port}"

        def identity(self) -> dict:
            ident = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-cutover-")}
            ok, why = verify_assertion(ident.get("x-cutover-assertion"), secret)
            user = inst.users.get(ident.get("x-cutover-user-id", ""))
            return {
                "served_by": "legacy-app",
                "provider": ident.get("x-cutover-provider", "none"),
                "user_id": ident.get("x-cutover-user-id"),
                "email": user["primary_email_address"] if user else None,
                "assertion_ok": ok,
                "assertion": why,
                "identity_headers": {k: v for k, v in ident.items() if k != "x-cutover-assertion"},
            }

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path == "/whoami":
                self.send(200, json.dumps(self.identity()).encode(), "application/json")
            elif path in ("/", "/app"):
                self.app_page()
            elif path == "/sign-in":
                back = urllib.parse.quote(self.browser_origin() + "/app", safe="")
                self.redirect(f"{self.fapi()}/sign-in?redirect_url={back}")
            elif path == "/healthz":
                self.send(200, b"ok\n", "text/plain")
            else:
                self.send(404, page("Not found", "<p>Not found (legacy app).</p>"))

        do_HEAD = do_GET

        def app_page(self) -> None:
            me = self.identity()
            origin = self.browser_origin()
            back = urllib.parse.quote(origin + "/app", safe="")
            rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                           for k, v in sorted(me["identity_headers"].items()))
            check = "ok" if me["assertion_ok"] else "bad"
            if me["provider"] == "clerk":
                user = inst.users.get(me["user_id"] or "", {})
                name = f"{user.get('first_name', '')} {user.get('last_name', '')}".strip()
                sid = me["identity_headers"].get("x-cutover-session-id", "")
                who = f"""<h1>Hello, {html.escape(name or me['user_id'] or '')}</h1>
<p id="who" data-provider="clerk">Signed in <b>with Clerk</b> as <code>{html.escape(me['user_id'] or '')}</code>
({html.escape(me['email'] or '')}).</p>
<form method="post" action="{html.escape(self.fapi())}/sign-out">
<input type="hidden" name="redirect_url" value="{html.escape(origin + '/app')}">
<button>Sign out (at Clerk)</button></form>
<script>
// What clerk-js does: refresh the 60-second session token before it expires.
setInterval(() => fetch({json.dumps(self.fapi())} + "/v1/client/sessions/" + {json.dumps(sid)} + "/tokens",
  {{method: "POST", credentials: "include"}}).catch(() => {{}}), 30000);
</script>"""
            else:
                who = f"""<h1>Welcome</h1>
<p id="who" data-provider="{html.escape(me['provider'])}">Not signed in.</p>
<p><a href="{html.escape(self.fapi())}/sign-in?redirect_url={back}">Sign in with Clerk</a></p>"""
            body = f"""<p class="banner">Legacy app &mdash; runs on Clerk (served by <code>legacy-app</code>)</p>
{who}
<div class="box"><b>What cutover told this app</b>
<table>{rows or '<tr><td>(no identity headers)</td></tr>'}</table>
<p>x-cutover-assertion: <span class="{check}">{html.escape(me['assertion'])}</span></p></div>"""
            self.send(200, page("Legacy app (Clerk)", body))

    return App


def main() -> None:
    host = os.environ.get("LEGACY_HOST", "127.0.0.1")
    app_port = int(os.environ.get("LEGACY_PORT", "3002"))
    standin_port = int(os.environ.get("CLERK_STANDIN_PORT", "3010"))
    inst = Instance()
    standin = ThreadingHTTPServer((host, standin_port), standin_handler(inst))
    app = ThreadingHTTPServer((host, app_port), app_handler(inst, standin.server_address[1]))
    for server in (standin, app):
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"legacy-app listening on {host}:{app.server_address[1]}, "
          f"clerk stand-in on {host}:{standin.server_address[1]}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
