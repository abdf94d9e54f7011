"""The Svix library as an oracle for cutover's tests.

  svix_oracle.py verify <secret>   stdin: JSON {"headers": {...}, "body": "..."}
      exits 0 and prints "ok" when svix.webhooks.Webhook accepts the message,
      exits 1 and prints the library's error otherwise;
  svix_oracle.py sign <secret> <msg_id> <timestamp_secs>   stdin: the body
      prints the svix-signature value the library computes.
"""

import json
import sys
from datetime import datetime, timezone

from svix.webhooks import Webhook, WebhookVerificationError


def main() -> int:
    mode, secret = sys.argv[1], sys.argv[2]
    hook = Webhook(secret)
    if mode == "verify":
        msg = json.load(sys.stdin)
        try:
            hook.verify(msg["body"].encode(), msg["headers"])
        except WebhookVerificationError as e:
            print(f"refused: {e}")
            return 1
        print("ok")
        return 0
    if mode == "sign":
        msg_id, ts = sys.argv[3], int(sys.argv[4])
        body = sys.stdin.read()
        print(hook.sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), body))
        return 0
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
