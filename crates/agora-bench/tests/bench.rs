//! `agora-bench` as a user runs it: its JSON report is the whole of its standard output.

use serde_json::Value;

/// Runs `agora-bench` with `args`, on SQLite unless they name a database and at the default
/// concurrency per webhook whatever the environment says, and answers its report, which must
/// be the whole of its standard output.
async fn bench_report(args: &[&str]) -> Value {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora-bench"))
        .args(args)
        .arg("--json")
        .env_remove("AGORA_DATABASE_URL")
        .env_remove("AGORA_MAX_CONCURRENCY_PER_WEBHOOK")
        .output()
        .await
        .expect("the binary runs");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The figure of `report` named `name`.
fn figure<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["figures"]
        .as_array()
        .expect("a list of figures")
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no figure {name:?} in {report}"))
}

#[tokio::test]
async fn the_json_report_is_all_of_stdout_and_each_run_is_compared_at_its_own_concurrency() {
    let report = bench_report(&["--only", "e2e", "--seconds", "1", "--events", "100"]).await;
    assert!(report["ceiling_posts_per_s"].as_f64().unwrap() > 0.0);
    let run = figure(
        &report,
        "end to end, 10 webhook(s) per event (deliveries/s)",
    );
    let matched = figure(&report, "ceiling with 320 in flight, as that run (POST/s)");
    let against = figure(
        &report,
        "end to end, 10 webhook(s) per event, against that ceiling (deliveries/s)",
    );
    assert_eq!(against["value"], run["value"]);
    assert_eq!(against["ceiling"], matched["value"]);
    let ratio = against["ratio_to_ceiling"].as_f64().unwrap();
    let expected = run["value"].as_f64().unwrap() / matched["value"].as_f64().unwrap();
    assert!(
        (ratio - expected).abs() < 1e-9,
        "{ratio} against {expected}"
    );
    assert!(
        run.get("ceiling").is_none(),
        "the other figures are compared with the run's ceiling"
    );
}

/// The schemas named `bench_…` in the PostgreSQL database at `url`.
async fn bench_schemas(url: &str) -> Vec<String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to PostgreSQL");
    let names =
        sqlx::query_scalar("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench\\_%'")
            .fetch_all(&mut conn)
            .await
            .expect("list schemas");
    conn.close().await.expect("close");
    names
}

/// The figure a backlog run of `report` measured, once it checked that its latencies were
/// measured at all.
fn backlog_figure(report: &Value) -> &Value {
    let backlog = figure(report, "latency at 200 events/s with 1000 scheduled");
    assert!(
        backlog["latency_ms"]["samples"].as_u64().unwrap() > 0,
        "{backlog}"
    );
    backlog
}

/// The arguments of a short backlog run: it writes the backlog's rows itself, the one thing
/// the bench does to the database without the API.
const BACKLOG: [&str; 8] = [
    "--seconds",
    "1",
    "--rate",
    "200",
    "--backlog",
    "1000",
    "--concurrency",
    "8",
];

#[tokio::test]
async fn a_real_delivery_s_headers_and_a_backlog_are_measured() {
    let mut args = BACKLOG.to_vec();
    args.extend(["--only", "headers,backlog"]);
    let report = bench_report(&args).await;
    backlog_figure(&report);
    let with_headers = figure(
        &report,
        "ceiling, requests with a delivery's headers (POST/s)",
    );
    assert!(
        with_headers["value"].as_f64().unwrap() > 0.0,
        "{with_headers}"
    );
}

#[tokio::test]
async fn on_postgresql_a_run_leaves_no_schema_behind() {
    let Some(url) = std::env::var("AGORA_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: set AGORA_TEST_POSTGRES_URL to run the bench on PostgreSQL");
        return;
    };
    let before = bench_schemas(&url).await;
    let mut args = BACKLOG.to_vec();
    args.extend(["--only", "ingest,backlog", "--database-url", &url]);
    let report = bench_report(&args).await;
    assert_eq!(report["backend"], "postgres", "{report}");
    backlog_figure(&report);
    let left: Vec<String> = bench_schemas(&url)
        .await
        .into_iter()
        .filter(|name| !before.contains(name))
        .collect();
    assert!(left.is_empty(), "the run left {left:?} behind");
}

#[tokio::test]
async fn a_slow_receiver_bounds_every_rate_by_the_requests_in_flight() {
    let report = bench_report(&[
        "--only",
        "e2e",
        "--seconds",
        "1",
        "--events",
        "200",
        "--receiver-latency-ms",
        "20",
    ])
    .await;
    assert_eq!(report["receiver_latency_ms"], 20);
    // Each request in flight completes at most once per 20 ms: the ceiling's 64 clients at
    // most 3,200 a second. The 32 requests of one webhook make 1,600 a second, and a little
    // more as measured: its run ends at the last arrival, before that request's wait (with
    // 200 deliveries in 7 waves of 32, six waits: 1,667 a second at most). Without the wait
    // both read tens of thousands.
    let ceiling = report["ceiling_posts_per_s"].as_f64().unwrap();
    assert!(ceiling > 0.0 && ceiling <= 3_200.0, "ceiling {ceiling}");
    let one = figure(&report, "end to end, 1 webhook(s) per event (deliveries/s)")["value"]
        .as_f64()
        .unwrap();
    assert!(one > 0.0 && one <= 1_700.0, "1 webhook: {one}");
}
