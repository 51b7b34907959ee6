//! The forum domain: what a community is made of and which events its changes fire.
//!
//! # Layout
//!
//! - [`catalog`]: every built-in event type, with the resource it belongs to and a
//!   description, as `GET /v1/event-types` lists them.

pub mod catalog;
