//! A receiver in memory, in place of the network, for tests on paused time.
//!
//! Tests of retries, breakers and leases move tokio's clock by hours (`start_paused`,
//! `tokio::time::advance`). Real sockets and paused time mix badly: while a request waits on
//! the network the runtime is idle, so paused time jumps to the next timer, and the attempt's
//! timeout fires before any answer can arrive. A [`Sender`] [answered by](Sender::answered_by)
//! a [`ScriptedReceiver`] does everything else as in production (signs, builds the headers and
//! the body, applies the timeout, classifies the answer, asks the retry policy), and hands the
//! request to the receiver's script instead of the HTTP client. The script answers at once,
//! or never ([`Answer::Silence`]: the attempt times out on tokio's clock), so a test's outcome
//! never depends on how fast the machine is.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use super::Sender;
use crate::time::now_ms;

/// What the scripted receiver does with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Answers this status with an empty body.
    Status(u16),
    /// Answers this status (429 or 503) asking to be retried after this long (`Retry-After`).
    RetryAfter(u16, Duration),
    /// No connection: the attempt fails as an unreachable endpoint does.
    Unreachable,
    /// Never answers: the attempt runs into its webhook's timeout.
    Silence,
}

/// One request as the scripted receiver got it.
#[derive(Clone, Debug)]
pub struct Received {
    /// When it arrived, unix ms by the engine's clock.
    pub at: i64,
    /// The URL it was sent to, which tells webhooks apart.
    pub url: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Received {
    /// The delivery's id (`webhook-id`), the same on every attempt.
    pub fn delivery_id(&self) -> &str {
        self.header("webhook-id")
    }

    /// The attempt number (`x-agora-attempt`).
    pub fn attempt(&self) -> u32 {
        self.header("x-agora-attempt").parse().unwrap_or(0)
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The script: an answer for each request.
type Script = dyn Fn(&Received) -> Answer + Send + Sync;

/// A receiver that answers by a script and keeps every request it got. Cheap to clone; clones
/// share the requests.
#[derive(Clone)]
pub struct ScriptedReceiver {
    script: Arc<Script>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl fmt::Debug for ScriptedReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedReceiver").finish_non_exhaustive()
    }
}

impl ScriptedReceiver {
    /// A receiver that answers each request as `script` says, given the request.
    pub fn new(script: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Self {
        Self {
            script: Arc::new(script),
            received: Arc::default(),
        }
    }

    /// A receiver that answers every request alike.
    pub fn always(answer: Answer) -> Self {
        Self::new(move |_| answer.clone())
    }

    /// The requests received so far, in the order they came.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("receiver lock").clone()
    }

    /// Answers `request` as the script says: its status, its `Retry-After` and its (empty)
    /// body, or why there was no answer.
    pub(super) async fn answer(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(u16, Option<Duration>, String), String> {
        let (parts, body) = request.into_parts();
        let received = Received {
            at: now_ms(),
            url: parts.uri.to_string(),
            headers: parts.headers,
            body: body
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default(),
        };
        let answer = (self.script)(&received);
        self.received.lock().expect("receiver lock").push(received);
        match answer {
            Answer::Status(status) => Ok((status, None, String::new())),
            Answer::RetryAfter(status, after) => Ok((status, Some(after), String::new())),
            Answer::Unreachable => Err("the scripted receiver refused the connection".into()),
            Answer::Silence => std::future::pending().await,
        }
    }
}

impl Sender {
    /// This sender with every request answered by `receiver` instead of the network (see
    /// [`ScriptedReceiver`]).
    pub fn answered_by(mut self, receiver: ScriptedReceiver) -> Self {
        self.scripted = Some(receiver);
        self
    }
}
