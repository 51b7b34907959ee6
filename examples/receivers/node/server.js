// An Agora webhook receiver: verifies each delivery with the official Standard Webhooks
// library, refuses bad signatures and stale timestamps, ignores repeats of a `webhook-id`,
// answers at once and does its work after answering.
"use strict";

const express = require("express");
const { Webhook } = require("standardwebhooks");

const secret = process.env.AGORA_WEBHOOK_SECRET;
if (!secret) {
  console.error("set AGORA_WEBHOOK_SECRET to the webhook's secret (whsec_…)");
  process.exit(2);
}
// The library decodes `whsec_` + base64 and checks the timestamp is within 5 minutes.
const webhook = new Webhook(secret);
const port = Number(process.env.PORT || 3000);

// The ids already accepted, so a retry or redelivery is processed once. Bounded and in
// memory: enough for an example; a real receiver records ids where its work is stored
// (a unique column), so they survive a restart and are shared by every instance.
const SEEN_MAX = 10000;
const seen = new Set();
function firstTime(id) {
  if (seen.has(id)) return false;
  seen.add(id);
  if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value);
  return true;
}

// What the receiver is for. Runs after the answer, so a slow job never makes Agora retry.
function handle(id, event) {
  console.log(`accepted ${id} ${event.type} ${event.id}`);
}

const app = express();
// The signature covers the exact bytes sent: keep the raw body, parse after verifying.
app.post("/webhook", express.raw({ type: "*/*", limit: "1mb" }), (req, res) => {
  let event;
  try {
    event = webhook.verify(req.body, {
      "webhook-id": req.get("webhook-id"),
      "webhook-timestamp": req.get("webhook-timestamp"),
      "webhook-signature": req.get("webhook-signature"),
    });
  } catch (err) {
    console.log(`refused ${req.get("webhook-id") || "-"}: ${err.message}`);
    return res.status(401).json({ error: "invalid signature or stale timestamp" });
  }
  const id = req.get("webhook-id");
  res.status(204).end();
  if (firstTime(id)) setImmediate(() => handle(id, event));
  else console.log(`duplicate ${id}`);
});

app.listen(port, "127.0.0.1", () => console.log(`listening on 127.0.0.1:${port}`));
