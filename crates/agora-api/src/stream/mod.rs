//! The live event stream's shared part: one reader of new events per process ([`StreamHub`]),
//! whose events every open `GET /v1/stream` filters for itself (`routes/stream.rs`).

mod hub;

pub use hub::{HubSettings, StreamHub, Streamed};
