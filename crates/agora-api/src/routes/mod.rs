//! One module per resource.

pub mod audit;
pub mod deliveries;
pub mod events;
pub mod forum;
pub mod health;
pub mod history;
pub mod keys;
pub mod stream;
pub mod webhooks;

use crate::error::ApiError;

/// Unknown paths answer in the error shape too.
pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}
