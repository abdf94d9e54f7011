// One call of the real Better Auth JS client, as a browser tab would make it.
//
//   node call.mjs <base URL> <jar file> <origin> <method> [<JSON argument>]
//
// <method> is a dotted path on the client made by `createAuthClient` with the
// organization, two-factor, username and phone-number plugins, e.g.
// `signIn.email`, `organization.setActive`, `getSession`. The client talks to
// <base URL> (cutover) under Better Auth's default base path, /api/auth.
//
// Each simulated browser is a cookie jar file: its cookies go out on every
// request (through the client's `customFetchImpl`), and every Set-Cookie that
// comes back is applied (a Max-Age of 0 or an expiry in the past removes the
// cookie), exactly as a browser keeps cookies for one site. Requests carry the
// page's Origin, as a browser's fetch does.
//
// Prints one JSON line: `{"data": …, "error": …, "setCookies": [names]}` — what
// the client returned (its error object is `{status, statusText, code,
// message}`), and the names of the cookies the server set during the call.
// Exit 0 whenever the client returned; 2 for bad usage; 1 if the client threw.

import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { createAuthClient } from "better-auth/client";
import {
  organizationClient,
  twoFactorClient,
  usernameClient,
  phoneNumberClient,
} from "better-auth/client/plugins";

const [base, jarPath, origin, method, rawArg] = process.argv.slice(2);
if (!base || !jarPath || !origin || !method) {
  console.error("usage: node call.mjs <base URL> <jar file> <origin> <method> [<JSON argument>]");
  process.exit(2);
}

/** name -> { value, expires (ms since epoch) or null } */
const jar = existsSync(jarPath) ? JSON.parse(readFileSync(jarPath, "utf8")) : {};
const setNames = [];

function cookieHeader() {
  const now = Date.now();
  return Object.entries(jar)
    .filter(([, c]) => c.expires === null || c.expires > now)
    .map(([name, c]) => `${name}=${c.value}`)
    .join("; ");
}

function keep(setCookie) {
  const [pair, ...attrs] = setCookie.split(";");
  const eq = pair.indexOf("=");
  if (eq < 1) return;
  const name = pair.slice(0, eq).trim();
  const value = pair.slice(eq + 1).trim();
  let expires = null;
  for (const a of attrs) {
    const [k, v = ""] = a.split("=");
    const key = k.trim().toLowerCase();
    if (key === "max-age") {
      expires = Date.now() + Number(v.trim()) * 1000;
    } else if (key === "expires" && expires === null) {
      const t = Date.parse(v.trim());
      if (!Number.isNaN(t)) expires = t;
    }
  }
  setNames.push(name);
  if (value === "" || (expires !== null && expires <= Date.now())) {
    delete jar[name];
  } else {
    jar[name] = { value, expires };
  }
}

async function browserFetch(input, init = {}) {
  const headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
  const cookies = cookieHeader();
  if (cookies) headers.set("cookie", cookies);
  headers.set("origin", origin);
  if (process.env.CALL_DEBUG) console.error(String(input instanceof Request ? input.url : input));
  const response = await fetch(input, { ...init, headers, redirect: "manual" });
  for (const c of response.headers.getSetCookie()) keep(c);
  return response;
}

const client = createAuthClient({
  baseURL: `${base.replace(/\/$/, "")}/api/auth`,
  fetchOptions: { customFetchImpl: browserFetch },
  plugins: [organizationClient(), twoFactorClient(), usernameClient(), phoneNumberClient()],
});

let fn = client;
let owner = client;
for (const part of method.split(".")) {
  owner = fn;
  fn = fn?.[part];
}
if (typeof fn !== "function") {
  console.error(`call.mjs: the client has no method ${method}`);
  process.exit(2);
}

try {
  const arg = rawArg === undefined ? undefined : JSON.parse(rawArg);
  // Reflect.apply: the client is a proxy, so `fn.call` would be read as a path.
  const result = await Reflect.apply(fn, owner, arg === undefined ? [] : [arg]);
  writeFileSync(jarPath, JSON.stringify(jar));
  const out = {
    data: result?.data ?? null,
    error: result?.error ?? null,
    setCookies: setNames,
  };
  process.stdout.write(JSON.stringify(out) + "\n");
} catch (e) {
  writeFileSync(jarPath, JSON.stringify(jar));
  console.error(`call.mjs: ${method} threw: ${e?.stack ?? e}`);
  process.exit(1);
}
