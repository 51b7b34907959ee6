//! The forum API end to end: every built-in event of docs/events-and-abilities.md (bar `webhook.*` and
//! custom types) fired by the API action that causes it, delivered exactly once to a real
//! receiver, with `data` equal to the API's answer and valid against the published schema;
//! failed writes fire nothing; filters; permissions; counters under concurrency.

pub(crate) mod support;

mod catalog;
mod categories;
mod counters;
mod failures;
mod filters;
mod groups_tags;
mod moderation;
mod permissions;
mod posts_reactions;
mod threads;
mod users;
