"""An Agora webhook receiver: verifies each delivery with the official Standard Webhooks
library, refuses bad signatures and stale timestamps, ignores repeats of a `webhook-id`,
answers at once and does its work after answering, on a worker thread."""

import os
import queue
import sys
import threading
from collections import OrderedDict

from flask import Flask, request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = os.environ.get("AGORA_WEBHOOK_SECRET")
if not SECRET:
    sys.exit("set AGORA_WEBHOOK_SECRET to the webhook's secret (whsec_...)")
# The library decodes `whsec_` + base64 and checks the timestamp is within 5 minutes.
webhook = Webhook(SECRET)

# The ids already accepted, so a retry or redelivery is processed once. Bounded and in
# memory: enough for an example; a real receiver records ids where its work is stored (a
# unique column), so they survive a restart and are shared by every instance.
SEEN_MAX = 10_000
seen: "OrderedDict[str, None]" = OrderedDict()
seen_lock = threading.Lock()


def first_time(msg_id: str) -> bool:
    with seen_lock:
        if msg_id in seen:
            return False
        seen[msg_id] = None
        if len(seen) > SEEN_MAX:
            seen.popitem(last=False)
        return True


# Work waits here for the worker, so the answer never waits for the work.
work: "queue.Queue[tuple[str, dict]]" = queue.Queue()


def handle(msg_id: str, event: dict) -> None:
    """What the receiver is for."""
    print(f"accepted {msg_id} {event['type']} {event['id']}", flush=True)


def worker() -> None:
    while True:
        handle(*work.get())


app = Flask(__name__)


@app.post("/webhook")
def receive():
    # The signature covers the exact bytes sent: verify the raw body, not re-encoded JSON.
    try:
        event = webhook.verify(request.get_data(), dict(request.headers))
    except WebhookVerificationError as e:
        print(f"refused {request.headers.get('webhook-id', '-')}: {e}", flush=True)
        return {"error": "invalid signature or stale timestamp"}, 401
    msg_id = request.headers["webhook-id"]
    if first_time(msg_id):
        work.put((msg_id, event))
    else:
        print(f"duplicate {msg_id}", flush=True)
    return "", 204


if __name__ == "__main__":
    threading.Thread(target=worker, daemon=True).start()
    port = int(os.environ.get("PORT", "3000"))
    print(f"listening on 127.0.0.1:{port}", flush=True)
    app.run(host="127.0.0.1", port=port)
