//! The HTTP client of the remote commands, and the exit codes its failures map to.

use std::time::Duration;

use serde_json::Value;

/// Where the server is and which key to send: `--server`/`AGORA_URL`, `--key`/`AGORA_KEY`.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Server")]
pub struct Remote {
    /// The server's base URL [default: http://127.0.0.1:7070].
    #[arg(long, env = "AGORA_URL", global = true)]
    pub server: Option<String>,

    /// The API key to send (`Authorization: Bearer …`).
    #[arg(long, env = "AGORA_KEY", global = true, hide_env_values = true)]
    pub key: Option<String>,

    /// Print the server's JSON answer as it is, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The server a remote command talks to when neither `--server` nor `AGORA_URL` says.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// Why a command failed, each with its own exit code (documented in docs/operations.md).
#[derive(Debug)]
pub enum Failure {
    /// The server refused the request (4xx): its `{code, message, status}`.
    Refused(Value),
    /// The command line was wrong in a way clap could not see (a malformed `--data`).
    Usage(String),
    /// The server could not be reached (refused connection, DNS, timeout).
    Unreachable(String),
    /// The server failed (5xx), or answered something that is not its API.
    Server(String),
}

impl Failure {
    /// The process exit code: 1 refused, 2 usage (as clap's own), 3 unreachable, 4 server.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused(_) => 1,
            Self::Usage(_) => 2,
            Self::Unreachable(_) => 3,
            Self::Server(_) => 4,
        }
    }

    /// The line printed on stderr.
    pub fn message(&self) -> String {
        match self {
            Self::Refused(body) => format!(
                "error: {} ({} {})",
                body["message"].as_str().unwrap_or("refused"),
                body["status"],
                body["code"].as_str().unwrap_or("error"),
            ),
            Self::Usage(m) => format!("error: {m}"),
            Self::Unreachable(m) => format!("error: cannot reach the server: {m}"),
            Self::Server(m) => format!("error: the server failed: {m}"),
        }
    }
}

/// A connection to one server with one key.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    /// A client for `remote`'s server.
    pub fn new(remote: &Remote) -> Result<Self, Failure> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("agora-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Usage(format!("cannot build the HTTP client: {e}")))?;
        let base = remote.server.as_deref().unwrap_or(DEFAULT_SERVER);
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: remote.key.clone(),
        })
    }

    /// Sends `method path` with an optional JSON body; answers the JSON body (`null` when
    /// empty, as for 204).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.map_err(|e| {
            if e.is_builder() {
                Failure::Usage(format!("bad server URL {:?}: {e}", self.base))
            } else {
                Failure::Unreachable(format!("{}: {e}", self.base))
            }
        })?;
        let status = answer.status();
        let text = answer
            .text()
            .await
            .map_err(|e| Failure::Unreachable(format!("the answer was cut: {e}")))?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                Failure::Server(format!("{status}: an answer that is not JSON: {text:.200}"))
            })?
        };
        if status.is_client_error() {
            Err(Failure::Refused(body))
        } else if !status.is_success() {
            Err(Failure::Server(format!(
                "{status}: {}",
                body["message"].as_str().unwrap_or("no message")
            )))
        } else {
            Ok(body)
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

/// `path` with the query parameters that are set, percent-encoded.
pub fn with_query(path: &str, params: &[(&str, Option<String>)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (name, value) in params {
        if let Some(value) = value {
            query.append_pair(name, value);
            any = true;
        }
    }
    if any {
        format!("{path}?{}", query.finish())
    } else {
        path.to_owned()
    }
}

/// `id` as one path segment: ids are never slashes or dots, and a typo must not reach another
/// route.
pub fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}
