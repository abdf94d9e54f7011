#!/usr/bin/env python3
"""The README's walkthrough, driven the way a browser drives it, against a
running `scripts/dev.sh` stack. Standard library only.

    scripts/dev-walkthrough.py [--base http://127.0.0.1:8080] [--clerk http://127.0.0.1:3010]
                               [--cutover PATH --config FILE]

One cookie jar per browser, keyed by host only, as browsers do (cookies do not
depend on the port), so the Clerk stand-in's cookies reach the app through
cutover exactly as they would in a browser. Each step prints what it saw; the
first unexpected answer stops the run with exit status 1 and says why.

Steps:
 1. Ada signs in at "Clerk" (a wrong password first: refused), lands on the app
    through cutover: served by the legacy app, provider clerk, the signed
    assertion checks out.
 2. Ada signs out at Clerk: as an allow-listed user her browser now goes to the
    Kernia app, anonymous.
 3. Ada signs in at Kernia with her Clerk password: cutover migrates it; the
    Kernia app now greets her (provider kernia, the same user id); signing in a
    second time works from Kernia's own hash.
 4. Margaret (deny-listed) signs in at Clerk and stays on the legacy app after
    signing out; Ken (awscognito) is told to reset his password at Kernia; Grace
    (argon2id + TOTP) is asked for her second factor by Kernia and completes it
    with a code from the TOTP secret the export carried.
 5. `cutover status --json` (when --cutover and --config are given) counts Ada
    as migrated and the others as pending.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import struct
import subprocess
import sys
import time
import urllib.parse


class Failed(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)
    print(f"  ok  {what}")


class Browser:
    """A minimal browser: a host-keyed cookie jar, no redirects followed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.jar: dict[str, str] = {}

    def request(self, method: str, url: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes, list[str]]:
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        h = dict(headers or {})
        if self.jar:
            h["cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        path = parts.path + ("?" + parts.query if parts.query else "")
        conn.request(method, path or "/", body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        cookies = resp.headers.get_all("set-cookie") or []
        for c in cookies:
            first, *attrs = [p.strip() for p in c.split(";")]
            name, _, value = first.partition("=")
            gone = any(a.lower() in ("max-age=0",) for a in attrs)
            if gone:
                self.jar.pop(name, None)
            else:
                self.jar[name] = value
        conn.close()
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, data, cookies

    def get(self, url: str):
        return self.request("GET", url, headers={"accept": "text/html"})

    def form(self, url: str, fields: dict[str, str]):
        return self.request("POST", url, urllib.parse.urlencode(fields).encode(),
                            {"content-type": "application/x-www-form-urlencoded"})

    def json(self, url: str, origin: str, payload: dict):
        return self.request("POST", url, json.dumps(payload).encode(),
                            {"content-type": "application/json", "origin": origin})


def page_side(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    if "served by <code>legacy-app</code>" in text:
        return "legacy"
    if "served by <code>kernia-app</code>" in text:
        return "kernia"
    return "unknown"


def provider(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    marker = 'id="who" data-provider="'
    i = text.find(marker)
    return text[i + len(marker):text.find('"', i + len(marker))] if i >= 0 else "?"


GRACE_TOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"  # deploy/demo/users.csv


def totp_now(secret: str) -> str:
    """RFC 6238 (SHA1, 6 digits, 30 s), as Clerk and Kernia use it. Kernia accepts
    no drift, so a code about to expire is not used: wait for the next step."""
    if 30 - time.time() % 30 < 3:
        time.sleep(30 - time.time() % 30 + 0.2)
    key = base64.b32decode(secret)
    mac = hmac.new(key, struct.pack(">Q", int(time.time() // 30)), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def clerk_sign_in(b: Browser, clerk: str, app: str, email: str, password: str):
    return b.form(f"{clerk}/sign-in", {"identifier": email, "password": password,
                                       "redirect_url": app})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="http://127.0.0.1:8080", help="cutover's plain-HTTP address")
    ap.add_argument("--clerk", default="http://127.0.0.1:3010", help="the Clerk stand-in")
    ap.add_argument("--cutover", help="the cutover binary, for `cutover status`")
    ap.add_argument("--config", help="cutover's configuration, for `cutover status`")
    args = ap.parse_args()
    base, clerk = args.base.rstrip("/"), args.clerk.rstrip("/")
    app = f"{base}/app"

    try:
        print("1. Ada signs in at Clerk and sees the legacy app")
        ada = Browser("ada")
        status, _, body, _ = ada.get(f"{clerk}/sign-in")
        check(status == 200 and b"Sign in" in body, "the Clerk stand-in serves its sign-in page")
        status, _, _, _ = clerk_sign_in(ada, clerk, app, "ada@demo.test", "not-her-password")
        check(status == 422, "a wrong password is refused by Clerk (422)")
        status, headers, _, _ = clerk_sign_in(ada, clerk, app, "ada@demo.test", "ada-clerk-2026")
        check(status == 303 and headers.get("location") == app, "Clerk signs Ada in and sends her to /app")
        check("__session" in ada.jar and ada.jar.get("__client_uat", "0") != "0",
              "Clerk wrote __session and __client_uat")
        check(any(k.startswith("__session_") for k in ada.jar), "and the suffixed __session_<suffix>")
        status, _, body, _ = ada.get(app)
        check(status == 200 and page_side(body) == "legacy", f"/app is served by the legacy app ({status})")
        check(provider(body) == "clerk", "which sees a Clerk session")
        status, _, body, _ = ada.get(f"{base}/whoami")
        me = json.loads(body)
        check(me.get("user_id") == "user_demo_ada" and me.get("provider") == "clerk",
              "x-cutover-user-id is Ada's Clerk id, x-cutover-provider is clerk")
        check(me.get("assertion_ok") is True, f"the signed assertion verifies: {me.get('assertion')}")

        print("2. Ada signs out at Clerk; her browser now goes to the Kernia app")
        status, _, _, _ = ada.form(f"{clerk}/sign-out", {"redirect_url": app})
        check(status == 303 and ada.jar.get("__client_uat") == "0", "Clerk signed her out (__client_uat=0)")
        status, _, body, _ = ada.get(app)
        check(page_side(body) == "kernia", "/app is now served by the Kernia app (Ada is allow-listed)")
        check(provider(body) in ("anonymous", "none"), "anonymous there")
        status, _, body, _ = ada.get(f"{base}/sign-in")
        check(status == 200 and b"/sign-in/email" in body, "the Kernia app's sign-in page")

        print("3. Ada signs in at Kernia with her Clerk password")
        status, _, body, _ = ada.json(f"{base}/api/auth/sign-in/email", base,
                                      {"email": "ada@demo.test", "password": "wrong-password"})
        check(status == 401, f"a wrong password is refused (401), nothing migrated ({status})")
        status, _, body, _ = ada.json(f"{base}/api/auth/sign-in/email", base,
                                      {"email": "ada@demo.test", "password": "ada-clerk-2026"})
        check(status == 200, f"the Clerk password signs her in at Kernia ({status} {body[:200]!r})")
        check(json.loads(body)["user"]["id"] == "user_demo_ada", "as the same user id")
        status, _, body, _ = ada.get(app)
        check(page_side(body) == "kernia" and provider(body) == "kernia",
              "the Kernia app greets her, signed in with Kernia")
        again = Browser("ada-2")
        status, _, _, _ = again.json(f"{base}/api/auth/sign-in/email", base,
                                     {"email": "ada@demo.test", "password": "ada-clerk-2026"})
        check(status == 200, "a second sign-in, from another browser, works from Kernia's own hash")

        print("4. The other demo users")
        margaret = Browser("margaret")
        status, _, _, _ = clerk_sign_in(margaret, clerk, app, "margaret@demo.test", "margaret-stays-2026")
        check(status == 303, "Margaret signs in at Clerk")
        status, _, body, _ = margaret.get(app)
        check(page_side(body) == "legacy" and provider(body) == "clerk", "and sees the legacy app")
        margaret.form(f"{clerk}/sign-out", {"redirect_url": app})
        status, _, body, _ = margaret.get(app)
        check(page_side(body) == "legacy", "signed out, she stays on the legacy app (deny-listed)")
        ken = Browser("ken")
        status, _, body, _ = ken.json(f"{base}/api/auth/sign-in/email", base,
                                      {"email": "ken@demo.test", "password": "anything-at-all"})
        check(status == 403 and b"PASSWORD_RESET_REQUIRED" in body,
              f"Ken (awscognito, no digest) must reset his password ({status})")
        grace = Browser("grace")
        status, _, body, _ = grace.json(f"{base}/api/auth/sign-in/email", base,
                                        {"email": "grace@demo.test", "password": "grace-argon-2026"})
        check(status == 200 and json.loads(body).get("twoFactorRedirect") is True,
              f"Grace's argon2id password is accepted and Kernia asks for her TOTP code ({status})")
        status, _, body, _ = grace.json(f"{base}/api/auth/two-factor/verify-totp", base,
                                        {"code": totp_now(GRACE_TOTP)})
        check(status == 200, f"her authenticator code (the TOTP secret imported from Clerk) completes it ({status})")
        status, _, body, _ = grace.get(app)
        check(page_side(body) == "kernia" and provider(body) == "kernia", "and the Kernia app greets her")

        if args.cutover and args.config:
            print("5. cutover status")
            out = subprocess.run([args.cutover, "status", "-c", args.config, "--json"],
                                 capture_output=True, text=True, timeout=60)
            check(out.returncode == 0, f"cutover status exits 0 ({out.stderr.strip()[:200]})")
            counts = json.loads(out.stdout)
            print(f"      {counts}")
            by_state = counts.get("by_state", {})
            check(by_state.get("migrated", 0) >= 2, "Ada and Grace are migrated")
            check(by_state.get("pending_password", 0) >= 2, "Linus and Margaret are still pending")
            check(by_state.get("pending_reset", 0) >= 1, "Ken needs a reset")
    except Failed as e:
        print(f"  FAIL  {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, http.client.HTTPException) as e:
        print(f"  FAIL  {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("walkthrough: all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
