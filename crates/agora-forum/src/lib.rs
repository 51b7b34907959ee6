//! The forum domain: what a community is made of and which events its changes fire. Knows
//! nothing of SQL or HTTP.
//!
//! # Layout
//!
//! - [`model`]: the resources (users, categories, groups, threads, posts, reactions, tags,
//!   reports…) as the API answers them and as events carry them.
//! - [`abilities`]: what an API key may do (`threads:write`, `admin`), parsed once.
//! - [`catalog`]: every built-in event type with its description, the JSON Schema of its
//!   `data` (generated from [`model`]) and an example, as `GET /v1/event-types` lists them.
//! - [`examples`]: the example resources of the catalog.
//! - [`input`]: parsing of client input (usernames, slugs, text bounds).
//! - [`password`]: argon2id password hashes.
//! - [`roles`]: what a signed-in user may do, from their group's flags.

pub mod abilities;
pub mod catalog;
pub mod examples;
pub mod input;
pub mod model;
pub mod password;
pub mod roles;
