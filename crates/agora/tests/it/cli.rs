//! The remote commands, run as the real `agora` binary against a real server: what they
//! print, `--json`, and the exit codes scripts rely on.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, Receiver, TestApp, ADMIN_KEY};

/// What a run of the binary gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: not JSON: {}", self.stdout))
    }
}

/// Runs `agora {args}` with no `AGORA_*` variable from the test's environment.
async fn agora(args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(args)
        .env_remove("AGORA_URL")
        .env_remove("AGORA_KEY")
        .env_remove("AGORA_DATABASE_URL")
        .env_remove("AGORA_DATA_DIR")
        .output()
        .await
        .expect("agora runs");
    Run {
        code: output.status.code().expect("exited"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs a remote command against `app` with the admin key.
async fn remote(app: &TestApp, args: &[&str]) -> Run {
    let server = format!("http://{}", app.addr);
    let mut all = args.to_vec();
    all.extend(["--server", &server, "--key", ADMIN_KEY]);
    agora(&all).await
}

#[tokio::test]
async fn webhooks_are_created_listed_and_shown_as_tables_or_json() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let url = receiver.url();
    let created = remote(
        &app,
        &[
            "webhooks",
            "create",
            "--url",
            &url,
            "--events",
            "webhook.test",
            "--name",
            "ops",
            "--header",
            "X-Team=blue",
            "--json",
        ],
    )
    .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let hook = created.json();
    let id = hook["id"].as_str().unwrap().to_owned();
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(hook["headers"]["X-Team"], "blue");
    assert_eq!(
        app.get(&format!("/v1/webhooks/{id}")).await.body["name"],
        "ops"
    );

    let listed = remote(&app, &["webhooks", "list", "--json"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.json()["data"][0]["id"], id.as_str());

    let table = remote(&app, &["webhooks", "list"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("ID "), "{}", table.stdout);
    assert!(lines[0].contains("STATUS") && lines[0].contains("URL"));
    assert!(lines[1].starts_with(&id) && lines[1].contains("active"));
    let column = |line: &str, word: &str| line.find(word).unwrap();
    assert_eq!(
        column(lines[0], "STATUS"),
        column(lines[1], "active"),
        "aligned: {}",
        table.stdout
    );

    let updated = remote(&app, &["webhooks", "update", &id, "--status", "inactive"]).await;
    assert_eq!(updated.code, 0, "{}", updated.stderr);
    assert!(updated.stdout.contains("inactive"), "{}", updated.stdout);

    let deleted = remote(&app, &["webhooks", "delete", &id]).await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert_eq!(app.get(&format!("/v1/webhooks/{id}")).await.status, 404);
}

#[tokio::test]
async fn a_test_delivery_is_read_back_and_redelivered() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["webhook.test"]}))
        .await;
    let id = hook["id"].as_str().unwrap();
    let tested = remote(&app, &["webhooks", "test", id, "--json"]).await;
    assert_eq!(tested.code, 0, "{}", tested.stderr);
    assert_eq!(tested.json()["success"], true);
    let delivery = tested.json()["delivery_id"].as_str().unwrap().to_owned();

    let got = remote(&app, &["deliveries", "get", &delivery, "--json"]).await;
    assert_eq!(got.code, 0, "{}", got.stderr);
    assert_eq!(got.json()["id"], delivery.as_str());
    assert_eq!(got.json()["attempts"][0]["response_status"], 200);
    let human = remote(&app, &["deliveries", "get", &delivery]).await;
    assert!(human.stdout.contains("ATTEMPT"), "{}", human.stdout);
    assert!(human.stdout.contains("succeeded"), "{}", human.stdout);

    let listed = remote(&app, &["webhooks", "deliveries", id, "--json"]).await;
    assert_eq!(listed.json()["data"][0]["id"], delivery.as_str());

    let again = remote(&app, &["deliveries", "redeliver", &delivery]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    receiver
        .wait_for(2, std::time::Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_through_the_api() {
    let app = spawn_app().await;
    let made = remote(
        &app,
        &[
            "keys",
            "create",
            "--name",
            "deployer",
            "--abilities",
            "webhooks:read",
        ],
    )
    .await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    let value = made.stdout.trim();
    assert!(value.starts_with("agora_"), "{}", made.stdout);
    let listed = remote(&app, &["keys", "list", "--json"]).await.json();
    let key = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "deployer")
        .unwrap()
        .clone();
    let id = key["id"].as_str().unwrap();
    let works = app.request_as(value, "GET", "/v1/webhooks", None).await;
    assert_eq!(works.status, 200);

    let revoked = remote(&app, &["keys", "revoke", id]).await;
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    let refused = app.request_as(value, "GET", "/v1/webhooks", None).await;
    assert_eq!(refused.status, 401);
    let table = remote(&app, &["keys", "list"]).await;
    assert!(!table.stdout.contains("deployer"), "{}", table.stdout);
}

#[tokio::test]
async fn exit_codes_tell_refused_from_unreachable_from_usage() {
    let app = spawn_app().await;
    let missing = remote(&app, &["webhooks", "get", "wh_01JD8X3ZQ4T9M2K7C5B6N8P0RS"]).await;
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(missing.stderr.contains("not_found"), "{}", missing.stderr);
    assert!(missing.stdout.is_empty());

    let forbidden = agora(&[
        "webhooks",
        "list",
        "--server",
        &format!("http://{}", app.addr),
        "--key",
        "agora_wrong",
    ])
    .await;
    assert_eq!(forbidden.code, 1, "{}", forbidden.stderr);
    assert!(forbidden.stderr.contains("unauthorized"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = agora(&["webhooks", "list", "--server", &nowhere, "--key", "k"]).await;
    assert_eq!(unreachable.code, 3, "{}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("cannot reach"),
        "{}",
        unreachable.stderr
    );

    let usage = agora(&["webhooks", "frobnicate"]).await;
    assert_eq!(usage.code, 2);
    let bad_data = remote(
        &app,
        &["events", "publish", "course.enrolled", "--data", "{nope"],
    )
    .await;
    assert_eq!(bad_data.code, 2, "{}", bad_data.stderr);
}

#[tokio::test]
async fn help_lists_only_a_commands_own_flags_and_completions_print() {
    let help = agora(&["keys", "create", "--help"]).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("--abilities"), "{}", help.stdout);
    assert!(help.stdout.contains("--data-dir"), "{}", help.stdout);
    assert!(!help.stdout.contains("--listen"), "{}", help.stdout);
    assert!(!help.stdout.contains("--retry-schedule"), "{}", help.stdout);
    let list = agora(&["webhooks", "list", "--help"]).await;
    assert!(list.stdout.contains("--server") && list.stdout.contains("--json"));
    assert!(!list.stdout.contains("--data-dir"), "{}", list.stdout);

    for shell in ["bash", "zsh", "fish"] {
        let script = agora(&["completions", shell]).await;
        assert_eq!(script.code, 0, "{}", script.stderr);
        assert!(
            script.stdout.contains("webhooks"),
            "{shell}: {}",
            script.stdout
        );
    }
}

#[tokio::test]
async fn keys_create_without_a_server_writes_to_the_database_of_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let app = spawn_app_with(|c| {
        c.data_dir = path;
        c.database_url = None;
    })
    .await;
    let made = agora(&[
        "keys",
        "create",
        "--abilities",
        "admin",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    let value = made.stdout.trim();
    assert!(value.starts_with("agora_"), "{}", made.stdout);
    let works = app.request_as(value, "GET", "/v1/audit-log", None).await;
    assert_eq!(works.status, 200, "{:?}", works.body);
    assert_eq!(works.body["data"][0]["actor"], "operator");
    assert_eq!(works.body["data"][0]["action"], "api_key.created");
}

#[tokio::test]
async fn custom_events_are_published_and_the_audit_log_is_read() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let published = remote(
        &app,
        &[
            "events",
            "publish",
            "course.enrolled",
            "--data",
            r#"{"n": 1}"#,
            "--json",
        ],
    )
    .await;
    assert_eq!(published.code, 0, "{}", published.stderr);
    let got = receiver
        .wait_for(1, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(got[0].json()["data"], json!({"n": 1}));
    assert_eq!(got[0].json()["id"], published.json()["id"]);

    let audit = remote(
        &app,
        &["audit-log", "--action", "webhook.created", "--json"],
    )
    .await;
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    let records = audit.json()["data"].as_array().unwrap().clone();
    assert_eq!(records.len(), 1, "{records:?}");
    let table = remote(&app, &["audit-log"]).await;
    assert!(table.stdout.starts_with("TIME"), "{}", table.stdout);
    assert!(table.stdout.contains("webhook.created"), "{}", table.stdout);
}
