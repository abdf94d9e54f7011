"""Check deliveries a consumer received with the Python svix library.

Reads a JSON array of {svix_id, svix_timestamp, svix_signature, body} on stdin
(what server.mjs keeps); the secret is CLERK_WEBHOOK_SIGNING_SECRET. Prints one
JSON line per delivery: {"svix_id": …, "ok": true|false, "error": …, "type": …}.
Exits 1 if any delivery fails to verify.
"""

import json
import os
import sys

from svix.webhooks import Webhook, WebhookVerificationError


def main() -> int:
    wh = Webhook(os.environ["CLERK_WEBHOOK_SIGNING_SECRET"])
    bad = 0
    for d in json.load(sys.stdin):
        headers = {
            "svix-id": d["svix_id"],
            "svix-timestamp": d["svix_timestamp"],
            "svix-signature": d["svix_signature"],
        }
        try:
            # Raises unless the signature and timestamp are good (svix 2.x
            # returns nothing useful on success).
            wh.verify(d["body"], headers)
            print(json.dumps({"svix_id": d["svix_id"], "ok": True, "type": json.loads(d["body"]).get("type")}))
        except (WebhookVerificationError, ValueError) as e:
            bad += 1
            print(json.dumps({"svix_id": d["svix_id"], "ok": False, "error": str(e)}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
