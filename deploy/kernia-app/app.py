"""The sample Kernia 0.1.0 app that cutover is developed and tested against.

It is a real Kernia server (FastAPI + SQLAlchemy) with the plugins a Clerk migration
needs: email_and_password, organization, username, phone_number, two_factor and admin.
Its schema is built with the pattern that works on Kernia 0.1.0 (resolve_tables ->
build_metadata -> SQLAlchemyAdapter), because `sqlalchemy_adapter()` ignores the
columns that plugins add to core tables (see docs/kernia-notes in the reference).

Besides Kernia's routes under /api/auth it serves two tiny app pages, `/` and
`/whoami`, which echo the identity headers cutover hands to the app, so the local
stack shows end to end what the app would see.

Configuration is by environment variable:

  KERNIA_DATABASE_URL  sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db
                       (a plain sqlite:// or postgres:// URL is converted)
  KERNIA_SECRET        the cookie-signing secret (required)
  KERNIA_HOST          listen address, default 127.0.0.1
  KERNIA_PORT          listen port, default 3001; 0 picks a free port
  KERNIA_BASE_URL      public base URL, default http://<host>:<port>
  KERNIA_RATE_LIMIT    "on" (default) or "off"
  KERNIA_TRUSTED_ORIGINS  comma-separated extra trusted origins

Once listening it prints one line `kernia-app listening on <host>:<port>` to stdout;
the test harness waits for that line.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import uvicorn
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import create_async_engine

from kernia.auth import init
from kernia.db.schema.resolve import resolve_tables
from kernia.plugins.admin.plugin import admin
from kernia.plugins.email_password.plugin import email_and_password
from kernia.plugins.organization.plugin import organization
from kernia.plugins.phone_number.plugin import phone_number
from kernia.plugins.two_factor import two_factor
from kernia.plugins.username import username
from kernia.types.adapter import FieldDef
from kernia.types.init_options import (
    EmailPasswordOptions,
    KerniaOptions,
    RateLimitOptions,
)
from kernia_fastapi import mount_kernia
from kernia_sqlalchemy.adapter import SQLAlchemyAdapter, build_metadata

# SMS codes "sent" by the phone_number plugin, kept in memory for local use.
SENT_SMS: list[tuple[str, str]] = []


async def _send_sms(phone: str, message: str) -> None:
    SENT_SMS.append((phone, message))


def _database_url() -> str:
    url = os.environ.get("KERNIA_DATABASE_URL", "sqlite+aiosqlite:///kernia.db")
    if url.startswith("sqlite://"):
        # sqlx style: sqlite://relative.db or sqlite:///absolute.db; SQLAlchemy wants
        # one more slash in both cases.
        url = "sqlite+aiosqlite:///" + url[len("sqlite://") :]
    elif url.startswith("sqlite:") and not url.startswith("sqlite+"):
        url = "sqlite+aiosqlite:///" + url[len("sqlite:") :]
    elif url.startswith("postgres://"):
        url = "postgresql+asyncpg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://") :]
    return url


# Kernia 0.1.0 bug: its SQLAlchemy adapter writes createdAt/updatedAt on every
# insert and update, but the two_factor plugin's `twoFactor` table has neither
# column, so `/two-factor/enable` (and using a backup code) fails with 500
# "Unconsumed column names: updatedAt, createdAt". Declaring the two columns here
# makes them part of the table (nullable, so rows written without them, such as
# cutover's imported TOTP secrets, stay valid). A database created before this
# fix needs them added by hand; docs/RUNBOOK.md has the SQL.
TWO_FACTOR_TIMESTAMPS = {
    "twoFactor": (
        FieldDef("createdAt", "date", required=False),
        FieldDef("updatedAt", "date", required=False),
    )
}


def _plugins() -> list:
    return [
        email_and_password(),
        organization(),
        username(),
        phone_number(),
        two_factor(),
        admin(),
    ]


async def _build(host: str, port: int) -> FastAPI:
    secret = os.environ.get("KERNIA_SECRET")
    if not secret:
        sys.exit("kernia-app: KERNIA_SECRET is not set")
    plugins = _plugins()
    models = tuple(
        resolve_tables(plugins, additional_fields=TWO_FACTOR_TIMESTAMPS).values()
    )
    metadata = build_metadata(models)
    engine = create_async_engine(_database_url())
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    adapter = SQLAlchemyAdapter(engine=engine, metadata=metadata, models=models)

    base_url = os.environ.get("KERNIA_BASE_URL") or f"http://{host}:{port}"
    trusted = [o for o in os.environ.get("KERNIA_TRUSTED_ORIGINS", "").split(",") if o]
    auth = init(
        KerniaOptions(
            database=adapter,
            secret=secret,
            base_url=base_url,
            trusted_origins=trusted,
            email_and_password=EmailPasswordOptions(enabled=True),
            rate_limit=RateLimitOptions(
                enabled=os.environ.get("KERNIA_RATE_LIMIT", "on") != "off"
            ),
            plugins=plugins,
            advanced={
                "phone-number": {"send_sms": _send_sms},
                "two-factor": {"issuer": "cutover-dev"},
            },
        )
    )

    app = FastAPI(title="cutover sample Kernia app")
    mount_kernia(app, auth)

    @app.get("/")
    async def index(request: Request) -> dict:
        return _identity(request, "kernia-app")

    @app.get("/whoami")
    async def whoami(request: Request) -> dict:
        return _identity(request, "kernia-app")

    # The demo's HTML pages (/sign-in, /app): pages.py next to this file.
    _install_pages(app)

    return app


def _install_pages(app: FastAPI) -> None:
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pages.py")
    spec = importlib.util.spec_from_file_location("kernia_app_pages", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.install(app)


def _identity(request: Request, served_by: str) -> dict:
    """What the app sees of the caller: cutover's identity headers (the signed
    assertion included, so a developer can inspect it) and the forwarding headers."""
    identity = {k: v for k, v in request.headers.items() if k.startswith("x-cutover-")}
    forwarding = {
        k: v
        for k, v in request.headers.items()
        if k in ("host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip")
    }
    return {
        "served_by": served_by,
        "provider": identity.get("x-cutover-provider", "none"),
        "user_id": identity.get("x-cutover-user-id"),
        "identity_headers": identity,
        "forwarding_headers": forwarding,
    }


def main() -> None:
    host = os.environ.get("KERNIA_HOST", "127.0.0.1")
    port = int(os.environ.get("KERNIA_PORT", "3001"))
    # Bind first, so port 0 yields a free port with no race, then hand the socket
    # to uvicorn.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Listen at once: connections made as soon as the "listening" line is out
    # wait in the backlog until uvicorn has started, instead of being refused.
    sock.listen(2048)
    port = sock.getsockname()[1]

    asyncio.run(_serve(sock, host, port))


async def _serve(sock: socket.socket, host: str, port: int) -> None:
    app = await _build(host, port)
    config = uvicorn.Config(app, log_level=os.environ.get("KERNIA_LOG_LEVEL", "warning"))
    server = uvicorn.Server(config)
    print(f"kernia-app listening on {host}:{port}", flush=True)
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    main()
