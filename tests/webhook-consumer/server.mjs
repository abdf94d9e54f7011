// A Clerk webhook consumer written the way apps write them: every request is
// checked with `verifyWebhook` from @clerk/backend (secret from
// CLERK_WEBHOOK_SIGNING_SECRET, as Clerk's docs set it up), then the handler
// reads the fields apps read (the primary email through
// primary_email_address_id, names, organization id, role …).
//
// For cutover's integration tests it also keeps what it received, raw, so the
// same deliveries can be checked with the Python svix library
// (verify_svix.py), and it can be told to misbehave:
//   POST /control {"fail_next": N, "status": 500}  answer the next N with status
//   POST /control {"hold": true}                   hold every answer until {"hold": false}
//   GET  /received                                 everything received, in order
// Prints `webhook-consumer listening on 127.0.0.1:<port>` once up.
import http from 'node:http';
import { verifyWebhook } from '@clerk/backend/webhooks';

const received = [];
let failNext = 0;
let failStatus = 500;
let hold = false;
const held = [];

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// What a typical consumer takes out of each event.
function view(evt) {
  const d = evt.data ?? {};
  switch (evt.type) {
    case 'user.created':
    case 'user.updated': {
      const primary = (d.email_addresses ?? []).find((e) => e.id === d.primary_email_address_id);
      return {
        user_id: d.id,
        email: primary?.email_address ?? null,
        emails: (d.email_addresses ?? []).map((e) => e.email_address),
        first_name: d.first_name ?? null,
        last_name: d.last_name ?? null,
        password_enabled: d.password_enabled,
      };
    }
    case 'user.deleted':
      return { user_id: d.id, deleted: d.deleted };
    case 'session.created':
    case 'session.ended':
    case 'session.revoked':
      return { session_id: d.id, user_id: d.user_id, status: d.status };
    case 'organization.created':
    case 'organization.updated':
    case 'organization.deleted':
      return { org_id: d.id, name: d.name ?? null, slug: d.slug ?? null, deleted: d.deleted ?? false };
    case 'organizationMembership.created':
    case 'organizationMembership.updated':
    case 'organizationMembership.deleted':
      return {
        membership_id: d.id,
        org_id: d.organization?.id ?? null,
        user_id: d.public_user_data?.user_id ?? null,
        role: d.role,
        identifier: d.public_user_data?.identifier ?? null,
      };
    case 'organizationInvitation.created':
    case 'organizationInvitation.accepted':
    case 'organizationInvitation.revoked':
      return {
        invitation_id: d.id,
        org_id: d.organization_id,
        email: d.email_address,
        role: d.role,
        status: d.status,
        user_id: d.user_id ?? null,
      };
    default:
      return {};
  }
}

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === 'GET' && req.url === '/received') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(received));
      return;
    }
    if (req.method === 'POST' && req.url === '/control') {
      const c = JSON.parse(await readBody(req));
      if (typeof c.fail_next === 'number') {
        failNext = c.fail_next;
        failStatus = c.status ?? 500;
      }
      if (typeof c.hold === 'boolean') {
        hold = c.hold;
        if (!hold) while (held.length) held.shift()();
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
      return;
    }
    const body = await readBody(req);
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === 'string') headers.set(k, v);
    }
    const request = new Request(`http://${req.headers.host}${req.url}`, { method: 'POST', headers, body });
    const record = {
      path: req.url,
      svix_id: req.headers['svix-id'] ?? null,
      svix_timestamp: req.headers['svix-timestamp'] ?? null,
      svix_signature: req.headers['svix-signature'] ?? null,
      body,
    };
    let status = 200;
    try {
      const evt = await verifyWebhook(request);
      record.verified = true;
      record.type = evt.type;
      record.view = view(evt);
    } catch (e) {
      record.verified = false;
      record.error = String(e?.message ?? e);
      status = 400;
    }
    if (status === 200 && failNext > 0) {
      failNext -= 1;
      status = failStatus;
    }
    record.answered = null;
    received.push(record);
    let peerGone = false;
    res.on('close', () => {
      if (!res.writableFinished) peerGone = true;
    });
    // `answered` is what the sender got: a status, or "peer_gone" when it hung
    // up (or died) before the answer.
    const answer = () => {
      if (peerGone || res.destroyed) {
        record.answered = 'peer_gone';
        return;
      }
      record.answered = status;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status < 300 ? '{"ok":true}' : '{"error":"consumer told to fail"}');
    };
    if (hold) held.push(answer);
    else answer();
  } catch (e) {
    res.writeHead(500);
    res.end(String(e));
  }
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`webhook-consumer listening on 127.0.0.1:${server.address().port}`);
});
