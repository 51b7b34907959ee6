//! Every integration test, in one binary (one link, shared helpers): the real server on a
//! random port, real HTTP receivers on loopback, real SQLite files.

mod helpers;
mod process;

mod api_validation;
mod cluster;
mod crash;
mod delivery;
mod disconnects;
mod forum;
mod openapi;
mod operations;
mod reliability;
mod security;
mod security_binary;
mod signatures;
mod tenancy;
mod webhooks_api;
