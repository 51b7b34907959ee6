#!/usr/bin/env python3
"""What the SQLite claim's `SELECT` costs per row chosen, in SQLite itself, without Agora.

Builds Agora's `deliveries` table and indexes (as of migration 0006, the schema of
`sqlite_writer_cost.py`) with 200,000 due deliveries of 10 webhooks, then times forms of the
claim's choice of 1,024 rows, each read as one JSON row as Agora reads it:

- `window, skip, sorted`: the earliest 4,096 due rows, webhooks without room (two here) left
  out, the rest sorted by due time again (Agora's claim until the sixth session of 2026-11-24);
- `window, skip`: the same without the second sort (Agora's claim since then);
- `no window`: the earliest due rows, when no webhook is skipped.

    python3 scripts/sqlite_claim_cost.py
"""
import os
import sqlite3
import tempfile
import time

# Agora's tables and indexes, kept in one place with the writer's replay.
from sqlite_writer_cost import SCHEMA

EVENTS, WEBHOOKS, LIMIT, WINDOW, ROUNDS = 20_000, 10, 1024, 4096, 50

CHOSEN = ("SELECT json_group_array(json_array(d.rowid, d.id, d.webhook_id, d.event_id, "
          "d.event_type, d.attempts, d.attempt_base)) FROM deliveries d WHERE d.rowid IN ")
HEAD = ("(SELECT rowid, webhook_id, due_at FROM deliveries WHERE due_at IS NOT NULL "
        "AND due_at <= ? ORDER BY due_at LIMIT ?) AS head")


def main():
    path = os.path.join(tempfile.mkdtemp(), "claim.db")
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ["page_size = 16384", "journal_mode = WAL", "synchronous = NORMAL",
                   "cache_size = -16384"]:
        db.execute(f"PRAGMA {pragma}")
    db.executescript(SCHEMA)
    now = 1_700_000_000_000
    rows, serial = [], 0
    for e in range(EVENTS):
        event_id = f"evt_01JD{e:022d}"
        for w in range(WEBHOOKS):
            serial += 1
            rows.append((f"msg_01JD{serial:022d}", event_id, f"wh_{w:026d}", "bench.happened",
                         "pending", now + e // 100, None, 0, 0, None, None, now, now))
    db.execute("BEGIN")
    db.executemany("INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.execute("COMMIT")

    due = now + 10**6
    skipped = (f"wh_{3:026d}", f"wh_{7:026d}")
    forms = {
        "window, skip, sorted": (
            f"{CHOSEN}(SELECT rowid FROM {HEAD} WHERE due_at IS NOT NULL "
            "AND webhook_id NOT IN (?, ?) ORDER BY due_at LIMIT ?)",
            (due, WINDOW, *skipped, LIMIT)),
        "window, skip": (
            f"{CHOSEN}(SELECT rowid FROM {HEAD} WHERE due_at IS NOT NULL "
            "AND webhook_id NOT IN (?, ?) LIMIT ?)",
            (due, WINDOW, *skipped, LIMIT)),
        "no window": (
            f"{CHOSEN}(SELECT rowid FROM deliveries WHERE due_at IS NOT NULL AND due_at <= ? "
            "ORDER BY due_at LIMIT ?)",
            (due, LIMIT)),
    }
    print(f"microseconds per row chosen ({LIMIT} rows a claim, best of 3 runs of {ROUNDS}):")
    for name, (sql, params) in forms.items():
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(ROUNDS):
                db.execute(sql, params).fetchall()
            best = min(best, time.perf_counter() - started)
        print(f"  {name:22} {best / ROUNDS / LIMIT * 1e6:5.2f}")


if __name__ == "__main__":
    main()
