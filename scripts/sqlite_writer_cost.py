#!/usr/bin/env python3
"""What the single SQLite writer's work per delivery costs in SQLite itself, without Agora.

Replays, on a fresh file with Agora's `deliveries` and `attempts` tables and indexes (as of
migration 0006: no lease index, in-flight rows leave the due index, which holds the webhook),
the writer's part of the 10-webhook end-to-end benchmark: 200,000 due deliveries, claimed 512
at a time by a windowed `UPDATE … RETURNING` (Agora's own claim now selects as JSON, then
updates), then recorded (one multi-row attempt `INSERT`, one
`UPDATE … WHERE id IN (…)`), each in its own transaction with `synchronous = NORMAL`.
Prints microseconds per delivery for each step. Run it on a quiet machine, then beside two
busy loops (`--busy 2`) to see what CPU contention alone does to the same work, or with
another page size (`--page-size`; Agora creates its databases with 16384).

    python3 scripts/sqlite_writer_cost.py [--busy N] [--page-size BYTES]
"""
import argparse
import json
import multiprocessing
import os
import sqlite3
import tempfile
import time

SCHEMA = """
CREATE TABLE events (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY, event_id TEXT NOT NULL, webhook_id TEXT NOT NULL,
    event_type TEXT NOT NULL, status TEXT NOT NULL, due_at INTEGER, lease_owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, attempt_base INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER, last_error TEXT, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL);
CREATE INDEX deliveries_due ON deliveries (due_at, webhook_id) WHERE due_at IS NOT NULL;
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE TABLE attempts (
    id TEXT PRIMARY KEY, delivery_id TEXT NOT NULL, attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL, request_headers TEXT NOT NULL,
    response_status INTEGER, response_body TEXT, error TEXT);
CREATE INDEX attempts_delivery ON attempts (delivery_id);
"""

EVENTS, WEBHOOKS, BATCH = 20_000, 10, 512


def busy_loop():
    while True:
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", type=int, default=0, help="busy loops running beside")
    parser.add_argument("--page-size", type=int, default=16384, help="SQLite page size")
    args = parser.parse_args()
    loops = [multiprocessing.Process(target=busy_loop, daemon=True) for _ in range(args.busy)]
    for p in loops:
        p.start()

    path = os.path.join(tempfile.mkdtemp(), "cost.db")
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in [f"page_size = {args.page_size}", "journal_mode = WAL", "synchronous = NORMAL", "cache_size = -16384",
                   "temp_store = MEMORY"]:
        db.execute(f"PRAGMA {pragma}")
    db.executescript(SCHEMA)
    serial = iter(range(1, 10**9))

    def new_id(prefix):
        return f"{prefix}_01JD{next(serial):022d}"

    now = 1_700_000_000_000
    db.execute("BEGIN")
    rows = []
    for e in range(EVENTS):
        event_id = new_id("evt")
        db.execute("INSERT INTO events VALUES (?, ?)",
                   (event_id, json.dumps({"id": event_id, "type": "bench.happened"})))
        for w in range(WEBHOOKS):
            rows.append((new_id("msg"), event_id, f"wh_{w:026d}", "bench.happened", "pending",
                         now + e // 100, None, 0, 0, None, None, now, now))
    db.executemany("INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # What an attempt stores since the headers that follow from its delivery are left out.
    headers = json.dumps([["user-agent", "Agora-Webhooks/0.1.0"],
                          ["webhook-signature", "v1," + "A" * 44],
                          ["x-agora-signature", "sha256=" + "a" * 64], ["x-agora-forum", "bench"]])
    spent = dict.fromkeys(["claim", "claim commit", "attempts insert", "advance",
                           "record commit"], 0.0)
    clock, total = now + 10**6, 0

    def timed(step, sql, params=()):
        started = time.perf_counter()
        result = db.execute(sql, params).fetchall()
        spent[step] += time.perf_counter() - started
        return result

    while True:
        db.execute("BEGIN IMMEDIATE")
        got = timed("claim",
                    "UPDATE deliveries SET status = 'in_flight', lease_owner = ?, due_at = NULL, "
                    "attempts = attempts + 1, updated_at = ? WHERE id IN (SELECT id FROM "
                    "(SELECT id, webhook_id, due_at FROM deliveries WHERE due_at IS NOT NULL "
                    "AND due_at <= ? ORDER BY due_at LIMIT ?) AS head ORDER BY due_at LIMIT ?) "
                    "RETURNING id, webhook_id, event_id, event_type, attempts, attempt_base",
                    ("node_x", clock, clock, BATCH * 4, BATCH))
        timed("claim commit", "COMMIT")
        if not got:
            break
        total += len(got)
        db.execute("BEGIN IMMEDIATE")
        params = []
        for g in got:
            params += [new_id("att"), g[0], 1, clock, 1, headers, 200, "", None]
        values = ", ".join(["(?,?,?,?,?,?,?,?,?)"] * len(got))
        timed("attempts insert",
              "INSERT INTO attempts SELECT column1, column2, column3, column4, column5, column6, "
              f"column7, column8, column9 FROM (VALUES {values}) AS v "
              "WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = v.column2)", params)
        ids = [g[0] for g in got]
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            timed("advance",
                  "UPDATE deliveries SET status = 'succeeded', due_at = NULL, "
                  "last_status_code = 200, last_error = NULL, updated_at = ?, lease_owner = NULL "
                  f"WHERE attempts = 1 AND status = 'in_flight' AND id IN ({','.join('?' * len(chunk))})",
                  [clock] + chunk)
        timed("record commit", "COMMIT")

    print(f"{total} deliveries, {args.busy} busy loop(s) beside, microseconds per delivery:")
    for step, seconds in spent.items():
        print(f"  {step:16} {seconds / total * 1e6:5.1f}")
    print(f"  {'all':16} {sum(spent.values()) / total * 1e6:5.1f}")


if __name__ == "__main__":
    main()
