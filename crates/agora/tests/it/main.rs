//! Every integration test, in one binary (one link, shared helpers): the real server on a
//! random port, real HTTP receivers on loopback, real SQLite files.

mod helpers;
mod process;

mod api_validation;
mod audit;
mod backup;
mod cli;
mod cluster;
mod crash;
mod delivery;
mod disconnects;
mod draining;
mod event_history;
mod forum;
mod idempotency;
mod listen;
mod local_commands;
mod metrics;
mod openapi;
mod operations;
#[cfg(feature = "otlp")]
mod otlp;
mod reliability;
mod security;
mod security_binary;
mod signatures;
mod stream;
mod tenancy;
mod upgrade;
mod webhooks_api;
