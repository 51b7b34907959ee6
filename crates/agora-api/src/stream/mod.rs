//! The live event stream's shared part: one reader of new events per process ([`StreamHub`]),
//! whose events every open `GET /v1/stream` filters for itself (`routes/stream.rs`), and the
//! SSE messages they send ([`frame`]).

pub mod frame;
mod hub;

pub use hub::{HubSettings, StreamHub, Streamed};
