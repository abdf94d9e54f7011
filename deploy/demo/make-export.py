#!/usr/bin/env python3
"""Write the demo's sample Clerk export (deploy/demo/): the dashboard CSV
(`users.csv`, the only source of password digests and TOTP secrets) and the
Backend API JSON files (`users.json`, `organizations.json`, `memberships.json`,
`invitations.json`), shaped like Clerk's Backend API answers.

The files are committed; run this only to change the demo. The digests come from
independent libraries (python bcrypt, argon2-cffi, hashlib as Django writes
pbkdf2), never from cutover's own code. In a throwaway virtual environment:

    python3 -m venv /tmp/demo-venv
    /tmp/demo-venv/bin/pip install bcrypt==5.0.0 argon2-cffi==25.1.0
    /tmp/demo-venv/bin/python deploy/demo/make-export.py

The passwords are public (scripts/dev.sh prints them): this is demo data only.
"""

import base64
import csv
import hashlib
import json
import pathlib
import secrets

import argon2
import bcrypt

OUT = pathlib.Path(__file__).resolve().parent
ORG = "org_demo_acme"
T0 = 1735689600000  # 2025-01-01T00:00:00Z in ms, Clerk's unit

# id, first, last, username, email, password, hasher, totp, role, note
USERS = [
    ("user_demo_ada", "Ada", "Lovelace", "ada", "ada@demo.test", "ada-clerk-2026",
     "bcrypt", "", "org:admin", "Clerk's native bcrypt ($2a$, cost 10); allow-listed: moves to Kernia"),
    ("user_demo_grace", "Grace", "Hopper", "grace", "grace@demo.test", "grace-argon-2026",
     "argon2id", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ", "org:member",
     "argon2id imported into Clerk earlier; TOTP second factor"),
    ("user_demo_linus", "Linus", "Pauling", "linus", "linus@demo.test", "linus-django-2026",
     "pbkdf2_sha256_django", "", "org:member", "a Django digest imported into Clerk"),
    ("user_demo_margaret", "Margaret", "Hamilton", "margaret", "margaret@demo.test",
     "margaret-stays-2026", "bcrypt", "", "org:member", "deny-listed: stays on Clerk"),
    ("user_demo_ken", "Ken", "Thompson", "ken", "ken@demo.test", "",
     "awscognito", "", "", "awscognito: no digest, reset required"),
]


def digest(password: str, hasher: str, email: str) -> str:
    if hasher == "bcrypt":
        # Go's x/crypto/bcrypt (Clerk's backend) writes $2a$ at cost 10; same algorithm.
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode().replace("$2b$", "$2a$", 1)
    if hasher == "argon2id":
        return argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1).hash(password)
    if hasher == "pbkdf2_sha256_django":
        salt = secrets.token_urlsafe(16)[:22]
        raw = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 600000, 32)
        return f"pbkdf2_sha256$600000${salt}${base64.b64encode(raw).decode()}"
    if hasher == "awscognito":
        return f"awscognito#eu-west-1_DemoPool#demo-client#{email}"
    raise SystemExit(f"unknown hasher {hasher}")


def main() -> None:
    header = ["id", "first_name", "last_name", "username", "primary_email_address",
              "primary_phone_number", "verified_email_addresses", "unverified_email_addresses",
              "verified_phone_numbers", "unverified_phone_numbers", "totp_secret",
              "password_digest", "password_hasher", "created_at"]
    rows, api_users, memberships = [], [], []
    for i, (uid, first, last, username, email, pw, hasher, totp, role, _note) in enumerate(USERS):
        created = T0 + i * 86_400_000
        rows.append([uid, first, last, username, email, "", email, "", "", "", totp,
                     digest(pw, hasher, email), hasher,
                     f"2025-01-{i + 1:02d}T00:00:00Z"])
        idn = uid.replace("user_", "idn_")
        api_users.append({
            "id": uid, "object": "user", "external_id": None,
            "primary_email_address_id": idn, "primary_phone_number_id": None,
            "username": username, "first_name": first, "last_name": last,
            "image_url": "https://img.clerk.com/default", "has_image": False,
            "public_metadata": {"demo": True}, "private_metadata": {}, "unsafe_metadata": {},
            "email_addresses": [{
                "id": idn, "object": "email_address", "email_address": email,
                "verification": {"status": "verified", "strategy": "email_code"},
                "linked_to": [], "created_at": created, "updated_at": created}],
            "phone_numbers": [], "external_accounts": [], "passkeys": [], "web3_wallets": [],
            "password_enabled": True,
            "two_factor_enabled": bool(totp), "totp_enabled": bool(totp),
            "backup_code_enabled": False,
            "banned": False, "locked": False,
            "last_sign_in_at": created + 3_600_000,
            "created_at": created, "updated_at": created,
        })
        if role:
            memberships.append({
                "object": "organization_membership", "id": f"orgmem_demo_{username}",
                "role": role, "permissions": [], "public_metadata": {}, "private_metadata": {},
                "organization": {"object": "organization", "id": ORG, "created_by": "user_demo_ada"},
                "public_user_data": {"user_id": uid, "first_name": first, "last_name": last,
                                     "identifier": email, "has_image": False},
                "created_at": T0 + 7 * 86_400_000, "updated_at": T0 + 7 * 86_400_000,
            })
    with open(OUT / "users.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    (OUT / "users.json").write_text(json.dumps(api_users, indent=1) + "\n")
    orgs = {"data": [{
        "object": "organization", "id": ORG, "name": "Acme (demo)", "slug": "acme-demo",
        "image_url": "", "has_image": False, "max_allowed_memberships": 0,
        "admin_delete_enabled": True, "public_metadata": {"plan": "demo"}, "private_metadata": {},
        "created_by": "user_demo_ada", "created_at": T0 + 6 * 86_400_000,
        "updated_at": T0 + 6 * 86_400_000}], "total_count": 1}
    (OUT / "organizations.json").write_text(json.dumps(orgs, indent=1) + "\n")
    (OUT / "memberships.json").write_text(
        json.dumps({"data": memberships, "total_count": len(memberships)}, indent=1) + "\n")
    invitations = {"data": [{
        "object": "organization_invitation", "id": "orginv_demo_newhire",
        "email_address": "newhire@demo.test", "role": "org:member", "role_name": "Member",
        "organization_id": ORG, "inviter_id": "user_demo_ada", "status": "pending",
        "public_metadata": {}, "private_metadata": {},
        "expires_at": 4102444800000,  # 2100-01-01: the demo's invitation does not expire
        "created_at": T0 + 8 * 86_400_000, "updated_at": T0 + 8 * 86_400_000}],
        "total_count": 1}
    (OUT / "invitations.json").write_text(json.dumps(invitations, indent=1) + "\n")
    # What scripts/dev.sh prints and the walkthrough test signs in with.
    (OUT / "passwords.json").write_text(json.dumps(
        [{"id": u[0], "email": u[4], "password": u[5], "hasher": u[6], "totp_secret": u[7],
          "note": u[9]} for u in USERS], indent=1) + "\n")


if __name__ == "__main__":
    main()
