//! Every integration test, in one binary (one link, shared helpers): the real server on a
//! random port, real HTTP receivers on loopback, real SQLite files.

mod helpers;

mod api_validation;
mod delivery;
mod forum;
mod signatures;
mod webhooks_api;
