//! The remote commands' flags and what each one sends and prints.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::client::{segment, with_query, Client, Failure, Remote};
use super::output;

/// Where a list starts and how long it is.
#[derive(Clone, Debug, Args)]
pub struct Paging {
    /// Items per page, 1 to 250 (the server's default: 50).
    #[arg(long)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

impl Paging {
    fn params(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("limit", self.limit.map(|n| n.to_string())),
            ("cursor", self.cursor.clone()),
        ]
    }
}

/// A webhook's settings, all optional: `create` needs `--url` and `--events`, `update`
/// changes only those given.
#[derive(Clone, Debug, Args)]
pub struct WebhookFields {
    /// Where deliveries go.
    #[arg(long)]
    url: Option<String>,
    /// Event patterns, comma-separated: `thread.created`, `thread.*`, `*`.
    #[arg(long, value_delimiter = ',')]
    events: Option<Vec<String>>,
    /// A label for people.
    #[arg(long)]
    name: Option<String>,
    /// What the webhook is for.
    #[arg(long)]
    description: Option<String>,
    /// The signing secret (`whsec_…`); generated when left out at creation.
    #[arg(long)]
    secret: Option<String>,
    /// A custom header sent with every delivery, `Name=value`; repeat for more. Replaces
    /// every custom header on update.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Retries after the first attempt.
    #[arg(long)]
    retry_count: Option<i64>,
    /// Per-attempt timeout, in milliseconds.
    #[arg(long)]
    timeout_ms: Option<i64>,
    /// `active` or `inactive`.
    #[arg(long)]
    status: Option<String>,
    /// `json`, `slack` or `discord`.
    #[arg(long)]
    format: Option<String>,
}

impl WebhookFields {
    /// The JSON body: only the fields given.
    fn body(&self) -> Result<Value, Failure> {
        let mut body = Map::new();
        let mut set = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                body.insert(name.to_owned(), value);
            }
        };
        set("url", self.url.clone().map(Value::from));
        set("events", self.events.clone().map(Value::from));
        set("name", self.name.clone().map(Value::from));
        set("description", self.description.clone().map(Value::from));
        set("secret", self.secret.clone().map(Value::from));
        set("retry_count", self.retry_count.map(Value::from));
        set("timeout_ms", self.timeout_ms.map(Value::from));
        set("status", self.status.clone().map(Value::from));
        set("format", self.format.clone().map(Value::from));
        if !self.headers.is_empty() {
            let mut headers = Map::new();
            for header in &self.headers {
                let (name, value) = header.split_once('=').ok_or_else(|| {
                    Failure::Usage(format!("--header {header:?} is not NAME=VALUE"))
                })?;
                headers.insert(name.trim().to_owned(), Value::from(value));
            }
            set("headers", Some(Value::Object(headers)));
        }
        Ok(Value::Object(body))
    }
}

/// `agora webhooks …`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List webhooks (an admin key sees every webhook, another key its own).
    List(Paging),
    /// Show one webhook.
    Get {
        /// The webhook's id, `wh_…`.
        id: String,
    },
    /// Register a webhook; its secret is printed this once.
    Create(WebhookFields),
    /// Change a webhook: only the settings given.
    Update {
        /// The webhook's id.
        id: String,
        #[command(flatten)]
        fields: WebhookFields,
    },
    /// Delete a webhook with its delivery log.
    Delete {
        /// The webhook's id.
        id: String,
    },
    /// Send one signed test delivery now and show how the receiver answered.
    Test {
        /// The webhook's id.
        id: String,
        /// A built-in or registered event type the test stands for.
        #[arg(long)]
        event: Option<String>,
    },
    /// Make a new signing secret (printed this once); the old one signs on for the grace period.
    RotateSecret {
        /// The webhook's id.
        id: String,
    },
    /// A webhook's delivery log, newest first.
    Deliveries {
        /// The webhook's id.
        id: String,
        /// `pending`, `succeeded` or `failed`.
        #[arg(long)]
        status: Option<String>,
        /// Only deliveries of this event type.
        #[arg(long)]
        event: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Queue again every failed delivery of a webhook since a time.
    Recover {
        /// The webhook's id.
        id: String,
        /// RFC 3339, e.g. `2026-12-07T09:00:00Z`.
        #[arg(long)]
        since: String,
    },
}

/// `agora deliveries …`.
#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// Show a delivery and every attempt: request headers, response status and body excerpt.
    Get {
        /// The delivery's id, `msg_…`.
        id: String,
    },
    /// Deliver again now, with the same `webhook-id`.
    Redeliver {
        /// The delivery's id.
        id: String,
    },
}

/// `agora events …`.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// The event history, newest first.
    List {
        /// Only events of this type.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only events at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only events before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one event with its exact body.
    Get {
        /// The event's id, `evt_…`.
        id: String,
    },
    /// Publish a custom event (its type registered first with POST /v1/event-types).
    Publish {
        /// The event type, e.g. `course.enrolled`.
        event_type: String,
        /// The event's `data`, a JSON object.
        #[arg(long, default_value = "{}")]
        data: String,
    },
}

/// `agora keys …`: on a running server through its API, except `create` when neither
/// `--server` nor `AGORA_URL` is given, which writes to the database directly.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the live keys (admin).
    List,
    /// Create a key and print its value (shown this once). With `--server` or `AGORA_URL`
    /// through the API (admin); without, directly in the database of `--data-dir` or
    /// `--database-url`, for a server's first key.
    Create {
        /// What the key is for.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Comma-separated abilities, e.g. `webhooks:write,threads:read`.
        #[arg(long, value_delimiter = ',', required = true)]
        abilities: Vec<String>,
        #[command(flatten)]
        local: agora::local::Location,
    },
    /// Revoke a key at once; its webhooks are disabled (admin).
    Revoke {
        /// The key's id, `key_…`.
        id: String,
    },
}

/// The remote half of `agora keys`, once the offline `create` is set aside.
pub enum RemoteKeysCommand {
    /// `keys list`.
    List,
    /// `keys create` with a server.
    Create {
        name: String,
        abilities: Vec<String>,
    },
    /// `keys revoke`.
    Revoke { id: String },
}

/// `agora audit-log`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only records about this id (a webhook, delivery or key).
    #[arg(long)]
    target: Option<String>,
    /// Only records of this action, e.g. `webhook.updated`.
    #[arg(long)]
    action: Option<String>,
    #[command(flatten)]
    paging: Paging,
}

/// Prints `answer` as JSON (`--json`) or through `human`.
fn show(remote: &Remote, answer: &Value, human: impl FnOnce(&Value)) {
    if remote.json {
        if !answer.is_null() {
            output::json(answer);
        }
    } else {
        human(answer);
    }
}

const WEBHOOK_COLUMNS: [&str; 5] = ["id", "status", "events", "url", "owner_key_id"];
const WEBHOOK_HEADERS: [&str; 5] = ["ID", "STATUS", "EVENTS", "URL", "OWNER"];

impl WebhooksCommand {
    /// Sends the command and prints the answer.
    pub async fn run(self, remote: &Remote) -> Result<(), Failure> {
        let client = Client::new(remote)?;
        let hook = |id: &str| format!("/v1/webhooks/{}", segment(id));
        match self {
            Self::List(paging) => {
                let list = client
                    .get(&with_query("/v1/webhooks", &paging.params()))
                    .await?;
                show(remote, &list, |l| {
                    output::table(&WEBHOOK_HEADERS, &output::rows(l, &WEBHOOK_COLUMNS));
                    output::more(l);
                });
            }
            Self::Get { id } => show(remote, &client.get(&hook(&id)).await?, output::fields),
            Self::Create(fields) => {
                let created = client.post("/v1/webhooks", &fields.body()?).await?;
                show(remote, &created, |w| {
                    output::fields(w);
                    eprintln!("the secret is shown only this once");
                });
            }
            Self::Update { id, fields } => {
                let body = fields.body()?;
                let updated = client.send(Method::PATCH, &hook(&id), Some(&body)).await?;
                show(remote, &updated, output::fields);
            }
            Self::Delete { id } => {
                client.send(Method::DELETE, &hook(&id), None).await?;
                if !remote.json {
                    println!("deleted {id}");
                }
            }
            Self::Test { id, event } => {
                let body = event.map_or_else(|| json!({}), |e| json!({ "event": e }));
                let answer = client.post(&format!("{}/test", hook(&id)), &body).await?;
                show(remote, &answer, output::fields);
            }
            Self::RotateSecret { id } => {
                let answer = client
                    .post(&format!("{}/rotate-secret", hook(&id)), &json!({}))
                    .await?;
                show(remote, &answer, |a| {
                    output::fields(a);
                    eprintln!("the new secret is shown only this once");
                });
            }
            Self::Deliveries {
                id,
                status,
                event,
                paging,
            } => {
                let mut params = paging.params();
                params.push(("status", status));
                params.push(("event", event));
                let path = with_query(&format!("{}/deliveries", hook(&id)), &params);
                let list = client.get(&path).await?;
                show(remote, &list, |l| {
                    output::table(
                        &["ID", "EVENT", "STATUS", "ATTEMPTS", "CREATED"],
                        &output::rows(l, &["id", "event_type", "status", "attempts", "created_at"]),
                    );
                    output::more(l);
                });
            }
            Self::Recover { id, since } => {
                let answer = client
                    .post(
                        &format!("{}/recover", hook(&id)),
                        &json!({ "since": since }),
                    )
                    .await?;
                show(remote, &answer, |a| {
                    println!("{} deliveries queued again", output::cell(&a["recovered"]));
                });
            }
        }
        Ok(())
    }
}

impl DeliveriesCommand {
    /// Sends the command and prints the answer.
    pub async fn run(self, remote: &Remote) -> Result<(), Failure> {
        let client = Client::new(remote)?;
        match self {
            Self::Get { id } => {
                let delivery = client
                    .get(&format!("/v1/deliveries/{}", segment(&id)))
                    .await?;
                show(remote, &delivery, |d| {
                    let mut summary = d.clone();
                    if let Some(map) = summary.as_object_mut() {
                        map.remove("attempts");
                    }
                    output::fields(&summary);
                    println!();
                    let attempts = json!({ "data": d["attempts"] });
                    output::table(
                        &["ATTEMPT", "STARTED", "STATUS", "MS", "ERROR"],
                        &output::rows(
                            &attempts,
                            &[
                                "attempt",
                                "started_at",
                                "response_status",
                                "duration_ms",
                                "error",
                            ],
                        ),
                    );
                });
            }
            Self::Redeliver { id } => {
                let answer = client
                    .post(
                        &format!("/v1/deliveries/{}/redeliver", segment(&id)),
                        &json!({}),
                    )
                    .await?;
                show(remote, &answer, |_| println!("queued {id} again"));
            }
        }
        Ok(())
    }
}

impl EventsCommand {
    /// Sends the command and prints the answer.
    pub async fn run(self, remote: &Remote) -> Result<(), Failure> {
        let client = Client::new(remote)?;
        match self {
            Self::List {
                event_type,
                since,
                until,
                paging,
            } => {
                let mut params = paging.params();
                params.extend([("type", event_type), ("since", since), ("until", until)]);
                let list = client.get(&with_query("/v1/events", &params)).await?;
                show(remote, &list, |l| {
                    output::table(
                        &["ID", "TYPE", "TIMESTAMP"],
                        &output::rows(l, &["id", "type", "timestamp"]),
                    );
                    output::more(l);
                });
            }
            Self::Get { id } => {
                let event = client.get(&format!("/v1/events/{}", segment(&id))).await?;
                // An event's body is the point: shown whole either way.
                output::json(&event);
            }
            Self::Publish { event_type, data } => {
                let data: Value = serde_json::from_str(&data)
                    .map_err(|e| Failure::Usage(format!("--data is not JSON: {e}")))?;
                let body = json!({"type": event_type, "data": data});
                let answer = client.post("/v1/events", &body).await?;
                show(remote, &answer, output::fields);
            }
        }
        Ok(())
    }
}

impl RemoteKeysCommand {
    /// Sends the command and prints the answer.
    pub async fn run(self, remote: &Remote) -> Result<(), Failure> {
        let client = Client::new(remote)?;
        match self {
            Self::List => {
                let list = client.get("/v1/api-keys").await?;
                show(remote, &list, |l| {
                    output::table(
                        &["ID", "NAME", "ABILITIES", "CREATED", "LAST USED"],
                        &output::rows(
                            l,
                            &["id", "name", "abilities", "created_at", "last_used_at"],
                        ),
                    );
                });
            }
            Self::Create { name, abilities } => {
                let body = json!({"name": name, "abilities": abilities});
                let key = client.post("/v1/api-keys", &body).await?;
                show(remote, &key, |k| {
                    println!("{}", output::cell(&k["key"]));
                    eprintln!(
                        "created {} with abilities {}; the key is shown only this once",
                        output::cell(&k["id"]),
                        output::cell(&k["abilities"])
                    );
                });
            }
            Self::Revoke { id } => {
                client
                    .send(
                        Method::DELETE,
                        &format!("/v1/api-keys/{}", segment(&id)),
                        None,
                    )
                    .await?;
                if !remote.json {
                    println!("revoked {id}");
                }
            }
        }
        Ok(())
    }
}

impl AuditArgs {
    /// Lists the audit trail (admin).
    pub async fn run(self, remote: &Remote) -> Result<(), Failure> {
        let client = Client::new(remote)?;
        let mut params = self.paging.params();
        params.push(("target_id", self.target));
        params.push(("action", self.action));
        let list = client.get(&with_query("/v1/audit-log", &params)).await?;
        show(remote, &list, |l| {
            output::table(
                &["TIME", "ACTOR", "ADDRESS", "ACTION", "TARGET", "CHANGES"],
                &output::rows(
                    l,
                    &[
                        "created_at",
                        "actor",
                        "remote_addr",
                        "action",
                        "target_id",
                        "changes",
                    ],
                ),
            );
            output::more(l);
        });
        Ok(())
    }
}
