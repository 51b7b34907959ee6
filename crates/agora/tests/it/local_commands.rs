//! The local commands of the real binary (`migrate`, `keys create`, `backup`, `version`): they
//! work on the database a server made and never make one of their own.

use std::path::Path;
use std::process::Output;

use tokio::process::Command;

use crate::helpers::{client_for, ADMIN_KEY};
use crate::process::ServerProcess;

/// Runs `agora ARGS` in `dir` with no `AGORA_*` database setting from the environment.
async fn agora(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(args)
        .current_dir(dir)
        .env_remove("AGORA_DATABASE_URL")
        .env_remove("AGORA_DATA_DIR")
        .env("AGORA_LOG", "warn")
        .output()
        .await
        .expect("agora runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn local_commands_refuse_to_create_a_database_and_name_the_directory_they_looked_in() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["migrate"], "data"),
        (&["keys", "create", "--abilities", "admin"], "data"),
        (&["backup", "copy.db"], "data"),
        (&["migrate", "--data-dir", "elsewhere"], "elsewhere"),
        (
            &["backup", "copy.db", "--data-dir", "elsewhere"],
            "elsewhere",
        ),
    ];
    for (args, looked_in) in cases {
        let output = agora(&cwd, args).await;
        assert!(!output.status.success(), "agora {args:?} succeeded");
        let message = stderr(&output);
        let expected = cwd.join(looked_in).display().to_string();
        assert!(
            message.contains(&expected) && message.contains("agora serve"),
            "agora {args:?} does not name {expected}: {message}"
        );
        let left: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
        assert!(left.is_empty(), "agora {args:?} left {left:?} behind");
    }
}

#[tokio::test]
async fn local_commands_work_on_the_database_the_server_made() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(&data, &[]).await;
    assert!(server.terminate().await, "the server stops cleanly");

    let output = agora(dir.path(), &["migrate"]).await;
    assert!(output.status.success(), "{}", stderr(&output));

    let output = agora(
        dir.path(),
        &[
            "keys",
            "create",
            "--name",
            "offline",
            "--abilities",
            "webhooks:read",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();

    let output = agora(dir.path(), &["backup", "first.db"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let first = std::fs::read(dir.path().join("first.db")).unwrap();
    let again = agora(dir.path(), &["backup", "first.db"]).await;
    assert!(!again.status.success(), "a backup overwrote a file");
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read(dir.path().join("first.db")).unwrap(),
        first,
        "the refused backup changed the file"
    );

    // The key made offline is one the server knows.
    server.restart().await;
    let app = client_for(server.addr);
    assert_eq!(
        app.request_as(&key, "GET", "/v1/webhooks", None)
            .await
            .status,
        200
    );
    assert_eq!(
        app.request_as(ADMIN_KEY, "GET", "/v1/webhooks", None)
            .await
            .status,
        200
    );
    assert!(server.terminate().await);
}

#[tokio::test]
async fn backup_sends_postgresql_users_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let output = agora(
        dir.path(),
        &[
            "backup",
            "copy.db",
            "--database-url",
            "postgres://agora@db.invalid/agora",
        ],
    )
    .await;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("pg_dump"), "{}", stderr(&output));
    assert!(!dir.path().join("copy.db").exists());
}

#[tokio::test]
async fn version_names_the_binary_and_the_schema_it_brings_a_database_to() {
    let dir = tempfile::tempdir().unwrap();
    let output = agora(dir.path(), &["version"]).await;
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    use agora_store::{schema, Backend};
    let expected = format!(
        "agora {}\nschema {} (SQLite), {} (PostgreSQL)\n",
        env!("CARGO_PKG_VERSION"),
        schema::latest(Backend::Sqlite),
        schema::latest(Backend::Postgres)
    );
    assert_eq!(text, expected);
}
