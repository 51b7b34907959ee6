#!/usr/bin/env python3
"""How long acknowledged writes stall while `agora backup` copies a large SQLite database.

Starts `agora serve` once on an empty data directory (which makes the database), stops it,
fills the events table with MB megabytes of 16 KB rows, starts it again, publishes events one
after another from a thread, and runs `agora backup` after two seconds. Prints the backup's
duration and the slowest publish answer during it and before it.

    cargo build --release -p agora
    python3 scripts/backup_stall.py target/release/agora /tmp/agora-stall/data 1024

Uses port 7391 and leaves the data directory and `stall-backup.db` beside it: remove both.
"""
import json, os, sqlite3, subprocess, sys, threading, time, urllib.request

BIN = sys.argv[1]; DATA = sys.argv[2]; MB = int(sys.argv[3])
os.makedirs(DATA, exist_ok=True)
env = dict(os.environ, AGORA_DATA_DIR=DATA, AGORA_LISTEN="127.0.0.1:7391", AGORA_ADMIN_KEY="agora_stall_key_0123456789abcdef",
           AGORA_LOG="warn", AGORA_RATE_LIMIT_PER_SECOND="0", AGORA_ALLOW_PRIVATE_TARGETS="1")
env.pop("AGORA_DATABASE_URL", None)
def serve():
    p = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen("http://127.0.0.1:7391/healthz"); return p
        except Exception: time.sleep(0.05)
    raise SystemExit("no server")
p = serve(); p.terminate(); p.wait()
db = sqlite3.connect(os.path.join(DATA, "agora.db"))
blob = "x" * 16000
now = int(time.time() * 1000)
n = MB * 1024 * 1024 // 16000
db.executemany("INSERT INTO events (id, type, body, created_at) VALUES (?, 'filler.row', ?, ?)",
               ((f"evt_filler{i:09d}", blob, now) for i in range(n)))
db.commit(); db.execute("PRAGMA wal_checkpoint(TRUNCATE)"); db.close()
print("database bytes", os.path.getsize(os.path.join(DATA, "agora.db")))
p = serve()
H = {"authorization": "Bearer agora_stall_key_0123456789abcdef", "content-type": "application/json"}
def post(path, body):
    r = urllib.request.Request("http://127.0.0.1:7391" + path, data=json.dumps(body).encode(), headers=H)
    return urllib.request.urlopen(r).status
post("/v1/event-types", {"name": "stall.tick", "description": "d"})
lat = []; stop = False
def load():
    while not stop:
        t = time.monotonic(); post("/v1/events", {"type": "stall.tick", "data": {}}); lat.append((t, time.monotonic() - t))
th = threading.Thread(target=load); th.start(); time.sleep(2)
t0 = time.monotonic()
subprocess.run([BIN, "backup", os.path.join(DATA, "..", "stall-backup.db"), "--data-dir", DATA], check=True, env=env)
t1 = time.monotonic(); time.sleep(2); stop = True; th.join(); p.terminate(); p.wait()
during = [l for t, l in lat if t0 <= t <= t1]; outside = [l for t, l in lat if t < t0]
print(f"backup took {t1 - t0:.2f}s; publishes during it: {len(during)}, max {max(during)*1000:.1f} ms; before it: {len(outside)}, max {max(outside)*1000:.1f} ms")
