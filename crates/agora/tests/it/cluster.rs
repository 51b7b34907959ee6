//! Several `agora serve` processes on one PostgreSQL database: the work is shared without
//! duplicates, and a killed node's leases are taken over. Skipped without
//! `AGORA_TEST_POSTGRES_URL`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{client_for, postgres_schema, postgres_url, Receiver, ADMIN_KEY};
use crate::process::ServerProcess;

async fn start_nodes(
    n: usize,
    url: &str,
    dirs: &[tempfile::TempDir],
    env: &[(&str, &str)],
) -> Vec<ServerProcess> {
    let mut nodes = Vec::new();
    // Every node of a cluster shares the key that seals webhook secrets.
    let secret_key = "5e".repeat(32);
    for dir in dirs.iter().take(n) {
        let mut vars = vec![
            ("AGORA_DATABASE_URL", url),
            ("AGORA_SECRET_KEY", secret_key.as_str()),
        ];
        vars.extend_from_slice(env);
        nodes.push(ServerProcess::start(dir.path(), &vars).await);
    }
    nodes
}

/// Publishes `count` events spread over the nodes, 16 at a time; returns the acknowledged ids.
async fn publish_spread(nodes: &[std::net::SocketAddr], count: usize) -> HashSet<String> {
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (acked, next, nodes) = (acked.clone(), next.clone(), nodes.to_vec());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= count {
                    return;
                }
                // Try the nodes in turn until one acknowledges (a killed one refuses).
                for k in 0.. {
                    let addr = nodes[(i + k) % nodes.len()];
                    let res = client
                        .post(format!("http://{addr}/v1/events"))
                        .bearer_auth(ADMIN_KEY)
                        .json(&json!({"type": "course.enrolled", "data": {"i": i}}))
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    if let Ok(res) = res {
                        if res.status() == 202 {
                            let body: serde_json::Value = res.json().await.unwrap();
                            acked
                                .lock()
                                .unwrap()
                                .insert(body["id"].as_str().unwrap().to_owned());
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

/// For each event id, the set of webhook-ids and the number of copies a receiver got.
fn tally(r: &Receiver) -> HashMap<String, (HashSet<String>, usize)> {
    let mut by_event: HashMap<String, (HashSet<String>, usize)> = HashMap::new();
    for m in r.received() {
        let entry = by_event
            .entry(m.json()["id"].as_str().unwrap().to_owned())
            .or_default();
        entry.0.insert(m.header("webhook-id").to_owned());
        entry.1 += 1;
    }
    by_event
}

async fn wait_all(receivers: &[Receiver], events: &HashSet<String>, within: Duration) {
    let deadline = Instant::now() + within;
    for r in receivers {
        loop {
            let seen = tally(r);
            let missing = events.iter().filter(|e| !seen.contains_key(*e)).count();
            if missing == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{missing} events never arrived");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_work_without_duplicates() {
    if postgres_url().is_none() {
        eprintln!("skipped: set AGORA_TEST_POSTGRES_URL to run the cluster tests");
        return;
    }
    let url = postgres_schema().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = start_nodes(3, &url, &dirs, &[]).await;
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    let admin = client_for(addrs[0]);
    admin.register_type("course.enrolled").await;
    let receivers = [Receiver::start().await, Receiver::start().await];
    for r in &receivers {
        admin
            .create_webhook(json!({"url": r.url(), "events": ["course.*"]}))
            .await;
    }
    let acked = publish_spread(&addrs, 10_000).await;
    assert_eq!(acked.len(), 10_000);
    wait_all(&receivers, &acked, Duration::from_secs(120)).await;
    for r in &receivers {
        r.assert_stays_at(10_000, Duration::from_millis(500)).await;
        for (event, (ids, copies)) in tally(r) {
            assert_eq!(
                (ids.len(), copies),
                (1, 1),
                "event {event} arrived more than once"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_leases_are_taken_over() {
    if postgres_url().is_none() {
        eprintln!("skipped: set AGORA_TEST_POSTGRES_URL to run the cluster tests");
        return;
    }
    let url = postgres_schema().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = start_nodes(3, &url, &dirs, &[("AGORA_LEASE", "2s")]).await;
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    let admin = client_for(addrs[0]);
    admin.register_type("course.enrolled").await;
    let receivers = [Receiver::start().await, Receiver::start().await];
    for r in &receivers {
        // Slow answers keep work in flight on every node when one dies.
        r.always(crate::helpers::Reply::status(200).after(Duration::from_millis(50)));
        admin
            .create_webhook(json!({"url": r.url(), "events": ["course.*"]}))
            .await;
    }
    let publishing = tokio::spawn({
        let addrs = addrs.clone();
        async move { publish_spread(&addrs, 3_000).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nodes[2].kill().await;
    let acked = publishing.await.unwrap();
    assert_eq!(acked.len(), 3_000);
    wait_all(&receivers, &acked, Duration::from_secs(120)).await;
    for r in &receivers {
        for (event, (ids, _)) in tally(r) {
            assert_eq!(
                ids.len(),
                1,
                "event {event}: duplicates keep their webhook-id"
            );
        }
    }
}
