//! Custom event types, registered through `POST /v1/event-types` (`course.enrolled`).

use sqlx::Row;

use crate::{Store, StoreError};
use agora_core::time::now_ms;

/// A registered custom event type.
#[derive(Clone, Debug)]
pub struct CustomEventType {
    /// `resource.action`.
    pub name: String,
    /// What it means, for integrators browsing the catalog.
    pub description: String,
    /// A JSON Schema of its `data`, when the registrant gave one.
    pub schema: Option<serde_json::Value>,
}

impl Store {
    /// Registers a custom type; a name taken answers [`StoreError::Conflict`].
    pub async fn register_event_type(&self, t: &CustomEventType) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO event_types (name, description, schema, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&t.name)
        .bind(&t.description)
        .bind(t.schema.as_ref().map(|s| s.to_string()))
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Every custom type, by name.
    pub async fn custom_event_types(&self) -> Result<Vec<CustomEventType>, StoreError> {
        sqlx::query("SELECT name, description, schema FROM event_types ORDER BY name")
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| {
                let schema: Option<String> = row.try_get("schema")?;
                Ok(CustomEventType {
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    schema: schema.and_then(|s| serde_json::from_str(&s).ok()),
                })
            })
            .collect()
    }
}
