//! A webhook's settings as types: its status, its filter, and (in [`change`]) the one place
//! where what a client sends becomes a validated [`WebhookChange`], so that route handlers
//! and the store handle values that are already known to be good.

pub mod change;

use serde::{Deserialize, Serialize};

pub use change::{Mode, Vetting, WebhookChange, WebhookInput};

/// Whether a webhook receives deliveries; serialized as the contract's `active` / `inactive`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    /// Receives deliveries.
    #[default]
    Active,
    /// Receives nothing: set by its owner, or by the system (auto-disable, revoked owner key).
    Inactive,
}

impl WebhookStatus {
    /// The stored and answered name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }
}

/// Restricts thread and post events to some categories or tags; empty lists restrict nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookFilter {
    /// Only events in these categories.
    #[serde(default)]
    pub category_ids: Vec<String>,
    /// Only events about threads carrying one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Why a webhook's input was refused: the API answers it as 422 with this code and message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Invalid {
    /// The contract's error code (`invalid_url`, `invalid_events`, …).
    pub code: &'static str,
    /// What is wrong, for the client.
    pub message: String,
}

impl Invalid {
    /// A refusal with this code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_the_contract_strings() {
        for s in [WebhookStatus::Active, WebhookStatus::Inactive] {
            assert_eq!(WebhookStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
        assert_eq!(WebhookStatus::parse("Active"), None);
    }
}
