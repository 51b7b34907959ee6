//! The webhook engine of Agora, independent of any HTTP server, database or forum.
//!
//! # Layout
//!
//! - [`ids`]: prefixed, sortable identifiers (`evt_…`, `msg_…`, `wh_…`).
//! - [`event`]: what happened: the [`event::EventType`] name and the [`event::Event`] envelope
//!   whose JSON is the body every receiver gets.
//! - [`subscription`]: which event types a webhook wants (`thread.created`, `thread.*`, `*`).
//! - [`signing`]: webhook secrets and the two signature schemes of the contract.
//! - [`retry`]: whether a failed attempt is retried, and when.
//! - [`format`](mod@format): the body as Slack or Discord want it, for webhooks that post there directly.
//! - [`target`]: which URLs and addresses a webhook may point at (SSRF protection).
//! - [`webhook`]: a webhook's status and filter, and the one place where a client's input
//!   becomes a validated [`webhook::WebhookChange`].
//! - [`dispatcher`]: claims due deliveries from a [`dispatcher::DeliveryQueue`] (implemented by
//!   the store), sends them with one shared HTTP client and records every attempt.
//!
//! Nothing here knows SQL or axum: the store and the API depend on this crate, never the reverse.
//!
//! The `test-util` feature adds test doubles, for tests here and in other crates: an in-memory
//! `DeliveryQueue` (`dispatcher::memory`), a receiver that answers by script in place of the
//! network (`dispatcher::scripted`), and [`time::now_ms`] on tokio's clock, so that tests on
//! paused time move the engine's time.

pub mod dispatcher;
pub mod event;
pub mod format;
pub mod ids;
pub mod retry;
pub mod signing;
pub mod subscription;
pub mod target;
pub mod time;
pub mod webhook;
