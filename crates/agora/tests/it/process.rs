//! The real `agora` binary as a child process, for tests that kill it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::helpers::ADMIN_KEY;

/// A server process on a fixed port and data directory, which can be killed and restarted.
pub struct ServerProcess {
    pub addr: SocketAddr,
    child: Option<Child>,
    args: Vec<(String, String)>,
}

/// A free loopback port.
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

impl ServerProcess {
    /// Starts `agora serve` on `data_dir` with test settings plus `env`, and waits until healthy.
    pub async fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let addr = free_addr();
        let mut args: Vec<(String, String)> = [
            ("AGORA_LISTEN", addr.to_string().as_str()),
            ("AGORA_DATA_DIR", data_dir.to_str().unwrap()),
            ("AGORA_ADMIN_KEY", ADMIN_KEY),
            ("AGORA_ALLOW_PRIVATE_TARGETS", "1"),
            ("AGORA_RETRY_SCHEDULE", "100ms,200ms,400ms"),
            ("AGORA_RETRY_JITTER", "0"),
            ("AGORA_POLL_INTERVAL", "100ms"),
            ("AGORA_LOG", "warn"),
            ("AGORA_RATE_LIMIT_PER_SECOND", "0"),
            // Stops at once; the drain has a test of its own.
            ("AGORA_DRAIN_SECONDS", "0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        args.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut server = Self {
            addr,
            child: None,
            args,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agora"));
        cmd.arg("serve")
            .env_remove("AGORA_DATABASE_URL")
            .envs(self.args.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        self.child = Some(cmd.spawn().expect("agora starts"));
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = client
                .get(format!("http://{}/healthz", self.addr))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return;
            }
            assert!(Instant::now() < deadline, "server did not become healthy");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL: no cleanup of any kind, as when a machine dies.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL");
        }
    }

    /// Starts the server again on the same port and data directory.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub async fn terminate(&mut self) -> bool {
        self.signal("TERM").await
    }

    /// Sends a signal (`TERM`, `INT`) and waits for the process to exit; returns whether it
    /// exited cleanly.
    pub async fn signal(&mut self, name: &str) -> bool {
        self.send_signal(name);
        self.wait_exit().await
    }

    /// Sends a signal (`TERM`, `INT`) without waiting for anything.
    pub fn send_signal(&self, name: &str) {
        let child = self.child.as_ref().expect("running");
        let pid = child.id().expect("pid").to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit (20 s at most); returns whether it exited cleanly.
    pub async fn wait_exit(&mut self) -> bool {
        let mut child = self.child.take().expect("running");
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("exits within 20 s")
            .unwrap();
        status.success()
    }
}
